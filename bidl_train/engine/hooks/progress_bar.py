"""Console progress bars with ETA for training, validation and testing.

Add to a config (``default_runtime.py`` does)::

    custom_hooks = [dict(type='ProgressBarHook')]

The bars are drawn on the main process only and only when stdout is a
terminal. In CI logs and redirected output there is no bar; instead the
hook logs a progress line (``epoch 1/12: 37/1000 iterations, 0:01:02
elapsed, eta 0:26:00, loss 1.2345``) whenever ``heartbeat_s`` seconds
passed without one from mmengine's LoggerHook, so a slow epoch is never
silent for long. mmengine's logger lines still go to the console (printed
above the bar) and to the log files unchanged.
"""
import time
from datetime import timedelta

from mmengine.hooks import Hook, LoggerHook

from bidl_train.errors import ConfigError
from bidl_train.registry import HOOKS
from bidl_train.utils.progress import ProgressDisplay


@HOOKS.register_module()
class ProgressBarHook(Hook):
    """One bar per training epoch, validation and test run.

    Args:
        enabled (bool, optional): force the bars on or off; by default on
            exactly when stdout is a terminal.
        stream: where to draw (default ``sys.stdout``; tests pass a buffer).
        heartbeat_s (float): without a bar, log a progress line when this
            many seconds passed since the last one (the hook's or the
            LoggerHook's); None switches the lines off.
    """
    priority = 'BELOW_NORMAL'

    def __init__(self, enabled=None, stream=None, heartbeat_s=30):
        self.enabled = enabled
        self.stream = stream
        if heartbeat_s is not None and not (
                isinstance(heartbeat_s, (int, float)) and heartbeat_s >= 0):
            raise ConfigError('ProgressBarHook: heartbeat_s must be a number '
                              f'of seconds >= 0 or None, got {heartbeat_s!r}')
        self.heartbeat_s = heartbeat_s
        self._display = None
        self._task = None
        self._iter_training = False  # an iteration-based bar to resume
        # (description, total, start time, iterations done at the start)
        self._phase = None
        self._last_line = 0.0

    # -- helpers ---------------------------------------------------------
    def _open(self, runner, description, total, done=0):
        self._close()
        if runner.rank != 0:
            return
        self._display = ProgressDisplay(stream=self.stream,
                                        enabled=self.enabled,
                                        loggers=[runner.logger]).start()
        self._task = self._display.add(description, total=total)
        self._phase = (description, total, time.monotonic(), done)
        self._last_line = time.monotonic()

    def _advance(self, runner=None, batch_idx=None, info=None):
        if self._display is not None:
            self._display.advance(self._task, info=info)
            if not self._display.live and runner is not None:
                self._heartbeat(runner, batch_idx, info)

    def _heartbeat(self, runner, batch_idx, info):
        """Log a progress line when nothing was printed for a while."""
        if self.heartbeat_s is None or self._phase is None:
            return
        now = time.monotonic()
        description, total, start, done_before = self._phase
        done = batch_idx + 1
        # mmengine's LoggerHook just showed progress, or at the last
        # iteration prints the epoch's line (loss, or the metrics) next
        if _logger_hook_logged(runner, batch_idx) or done == total:
            self._last_line = now
            return
        if now - self._last_line < self.heartbeat_s:
            return
        self._last_line = now
        elapsed = now - start
        line = f'{description}: {done}/{total or "?"} iterations, ' \
            f'{_clock(elapsed)} elapsed'
        if total and done > done_before:
            rate = elapsed / (done - done_before)
            line += f', eta {_clock(rate * (total - done))}'
        if info:
            line += f', {info}'
        runner.logger.info(line)

    def _close(self):
        if self._display is not None:
            self._display.stop()
        self._display, self._task, self._phase = None, None, None

    # -- training ----------------------------------------------------------
    def before_train_epoch(self, runner):
        loop = runner.train_loop
        done = 0
        if hasattr(loop, 'max_epochs'):
            description = f'epoch {runner.epoch + 1}/{loop.max_epochs}'
            total = len(runner.train_dataloader)
        else:  # iteration-based training: one bar over all iterations
            self._iter_training = True
            description = 'training'
            total = getattr(loop, 'max_iters', None)
            done = runner.iter  # a resumed run starts part-way
        self._open(runner, description, total, done=done)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        info = None
        if outputs and 'loss' in outputs:
            loss = outputs['loss']
            loss = loss.detach() if hasattr(loss, 'detach') else loss
            info = f'loss {float(loss):.4f}'
        # batch_idx counts within the epoch, or all iterations of an
        # iteration-based run (whose bar covers them all)
        self._advance(runner, batch_idx, info)

    def after_train_epoch(self, runner):
        self._iter_training = False
        self._close()

    # -- validation ----------------------------------------------------------
    def before_val_epoch(self, runner):
        self._open(runner, 'validation', len(runner.val_dataloader))

    def after_val_iter(self, runner, batch_idx, data_batch=None,
                       outputs=None):
        self._advance(runner, batch_idx)

    def after_val_epoch(self, runner, metrics=None):
        self._close()
        if self._iter_training:  # validation inside iteration-based training
            self._open(runner, 'training',
                       getattr(runner.train_loop, 'max_iters', None),
                       done=runner.iter)
            if self._display is not None:
                self._display.advance(self._task, steps=runner.iter)

    # -- testing -------------------------------------------------------------
    def before_test_epoch(self, runner):
        self._open(runner, 'test', len(runner.test_dataloader))

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None):
        self._advance(runner, batch_idx)

    def after_test_epoch(self, runner, metrics=None):
        self._close()

    def after_run(self, runner):
        self._close()


def _logger_hook_logged(runner, batch_idx):
    """Whether mmengine's LoggerHook logged after iteration ``batch_idx``
    (every ``interval`` iterations of an epoch, and at its end)."""
    for hook in runner.hooks:
        if isinstance(hook, LoggerHook):
            return (batch_idx + 1) % hook.interval == 0
    return False


def _clock(seconds):
    return str(timedelta(seconds=int(seconds)))
