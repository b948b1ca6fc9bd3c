"""Console progress bars with ETA for training, validation and testing.

Add to a config (``default_runtime.py`` does)::

    custom_hooks = [dict(type='ProgressBarHook')]

The bars are drawn on the main process only and only when stdout is a
terminal; in CI logs and redirected output the hook does nothing.
mmengine's logger lines still go to the console (printed above the bar) and
to the log files unchanged.
"""
from mmengine.hooks import Hook

from bidl_train.registry import HOOKS
from bidl_train.utils.progress import ProgressDisplay


@HOOKS.register_module()
class ProgressBarHook(Hook):
    """One bar per training epoch, validation and test run.

    Args:
        enabled (bool, optional): force the bars on or off; by default on
            exactly when stdout is a terminal.
        stream: where to draw (default ``sys.stdout``; tests pass a buffer).
    """
    priority = 'BELOW_NORMAL'

    def __init__(self, enabled=None, stream=None):
        self.enabled = enabled
        self.stream = stream
        self._display = None
        self._task = None
        self._iter_training = False  # an iteration-based bar to resume

    # -- helpers ---------------------------------------------------------
    def _open(self, runner, description, total):
        self._close()
        if runner.rank != 0:
            return
        self._display = ProgressDisplay(stream=self.stream,
                                        enabled=self.enabled,
                                        loggers=[runner.logger]).start()
        self._task = self._display.add(description, total=total)

    def _advance(self, info=None):
        if self._display is not None:
            self._display.advance(self._task, info=info)

    def _close(self):
        if self._display is not None:
            self._display.stop()
        self._display, self._task = None, None

    # -- training ----------------------------------------------------------
    def before_train_epoch(self, runner):
        loop = runner.train_loop
        if hasattr(loop, 'max_epochs'):
            description = f'epoch {runner.epoch + 1}/{loop.max_epochs}'
            total = len(runner.train_dataloader)
        else:  # iteration-based training: one bar over all iterations
            self._iter_training = True
            description = 'training'
            total = getattr(loop, 'max_iters', None)
        self._open(runner, description, total)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        info = None
        if outputs and 'loss' in outputs:
            loss = outputs['loss']
            loss = loss.detach() if hasattr(loss, 'detach') else loss
            info = f'loss {float(loss):.4f}'
        self._advance(info)

    def after_train_epoch(self, runner):
        self._iter_training = False
        self._close()

    # -- validation ----------------------------------------------------------
    def before_val_epoch(self, runner):
        self._open(runner, 'validation', len(runner.val_dataloader))

    def after_val_iter(self, runner, batch_idx, data_batch=None,
                       outputs=None):
        self._advance()

    def after_val_epoch(self, runner, metrics=None):
        self._close()
        if self._iter_training:  # validation inside iteration-based training
            self._open(runner, 'training',
                       getattr(runner.train_loop, 'max_iters', None))
            if self._display is not None:
                self._display.advance(self._task, steps=runner.iter)

    # -- testing -------------------------------------------------------------
    def before_test_epoch(self, runner):
        self._open(runner, 'test', len(runner.test_dataloader))

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None):
        self._advance()

    def after_test_epoch(self, runner, metrics=None):
        self._close()

    def after_run(self, runner):
        self._close()
