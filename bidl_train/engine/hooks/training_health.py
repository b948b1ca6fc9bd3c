"""Warn when a training run is going nowhere, and say what usually fixes it.

On by default (``default_hooks.health`` in ``configs/_base_/default_runtime.py``).
Every ``interval`` training iterations (by default the ``LoggerHook``'s, so a
check happens at each iteration the console logs) the hook measures four
things and warns, through the run's logger at WARNING (console and log file),
when one of them stays wrong:

``silent``
    a spiking layer emitted no spike at all (no neuron, no step, no sample)
    in ``patience`` consecutive checks;
``saturated``
    a spiking layer's firing rate (spikes per neuron per step) was at least
    ``saturated_rate`` in ``patience`` consecutive checks (analog/LIAF
    layers have no saturation);
``flat_loss``
    over the last ``loss_window`` checks the mean training loss between two
    checks moved by less than ``loss_tol`` of its value:
    ``(max - min) / |mean| < loss_tol`` (a loss sitting at 0 has converged
    and is not reported);
``vanishing_grad``
    the gradient norm of a layer's own parameters was below ``grad_tol``,
    or below ``grad_ratio`` times the largest layer's norm, in ``patience``
    consecutive checks;
``val_silent``
    a spiking layer that fires in training (mean rate of the training
    checks since the previous validation above 0) emitted no spike over a
    whole validation epoch (every batch, sample, step and neuron, in
    evaluation mode);
``val_saturated``
    a spiking layer below ``saturated_rate`` in training fired at a rate of
    at least ``saturated_rate`` over a whole validation epoch.

The two validation checks catch a network that learns in training mode but
not in evaluation mode, which is the one that ``bidl-test`` measures and
``bidl-deploy`` exports. The usual cause is BatchNorm: in training it
normalises with each batch's own statistics, in evaluation with running
statistics that follow those only slowly (PyTorch's momentum 0.1, once per
batch), so after little training a layer can get almost no input in
evaluation. A validation epoch is enough evidence: they warn at the first
validation where the condition holds (no ``patience``).

In a test run (``runner.test()``, which ``bidl-test`` runs) the hook
measures each spiking layer's firing rate over the whole test set, in
evaluation mode, and warns at once about a layer that is ``silent`` (no
spike at all) or ``saturated`` (rate of at least ``saturated_rate``), with
the same advice as in training (plus what the model computes differently in
evaluation mode, when it has BatchNorm, training noise or dropout: a layer
that fires in training can be silent in evaluation). The rates and warnings
are kept in :attr:`TrainingHealthHook.test_report`, which ``bidl-test``
writes into its JSON report. Under a distributed launcher they are rank 0's
share of the test set (``samples`` says how many).

Layers are named by their module path, as in ``model.named_modules()``
(spiking layers: the neuron modules observed by :class:`SpikeMonitorHook`
too; gradients: the module owning the parameters, e.g.
``backbone.layers.0.conv``). Each condition warns once per layer; it warns
again only after the layer recovered (logged at INFO) and relapsed. Each
warning also goes to TensorBoard as text (tag ``health/warning``, at the
step of the check). At each check the visualizer (TensorBoard) receives the
scalars ``health/silent_layers``, ``health/saturated_layers`` and
``health/vanishing_grad_layers`` (layers in that condition at this check),
``health/min_grad_ratio`` (smallest layer gradient norm over the largest),
``health/loss_rel_change`` (once ``loss_window`` checks ran) and
``health/warnings`` (conditions warned and not recovered). After each
validation it receives ``health/val_rate/<layer>`` (the layer's firing rate
over the whole validation epoch), at the step mmengine logs the validation
metrics at (the epoch, or the iteration with ``log_metric_by_epoch=False``).

Configure or turn off from a config::

    default_hooks = dict(health=dict(patience=5, loss_tol=1e-4))
    default_hooks = dict(health=dict(checks=('silent', 'flat_loss')))
    # everything but the validation checks
    default_hooks = dict(health=dict(checks=(
        'silent', 'saturated', 'flat_loss', 'vanishing_grad')))
    default_hooks = dict(health=None)          # off

Cost: between checks, adding the loss to a running sum (about 50 us). A
check hooks the spiking layers for one training forward, exactly as
:class:`SpikeMonitorHook` does, but sums each output once instead of
computing per-neuron statistics, and keeps a reference to each parameter's
gradient as autograd finishes it; the norms take one fused
``_foreach_norm`` per dtype and device, and each check reads its numbers
in two host syncs. Measured on the demo config
(``configs/demo/synthetic_gesture.py``, batch 16, CPU, one thread, CPU
time, median of 40 interleaved iterations): a check adds about 1.5 ms to a
52 ms iteration (3 %); at the default interval (every logged iteration,
10 in the demo) that is 0.3 % of the training time. In validation and
test each spiking layer's output costs the same single sum (no host sync
until the end of the epoch).
"""
import collections
import contextlib
import math
import numbers

import torch
from mmengine.hooks import Hook, LoggerHook
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.models.monitor import hooked_spike_sources
from bidl_train.registry import HOOKS

from .spike_monitor import unwrap

CHECKS = ('silent', 'saturated', 'flat_loss', 'vanishing_grad',
          'val_silent', 'val_saturated')
#: the checks that need the spikes of the training checks
SPIKE_CHECKS = ('silent', 'saturated', 'val_silent', 'val_saturated')
#: the checks made on the spikes of a whole validation epoch
VAL_CHECKS = ('val_silent', 'val_saturated')

#: What usually fixes each condition (the end of its warning).
ADVICE = {
    'silent': ('lower its firing threshold (theta), raise the input scale, '
               'check the input normalisation, or revisit the weight '
               'initialisation of the layer feeding it'),
    'saturated': ('raise its firing threshold (theta), lower its leak '
                  '(alpha), or add normalisation before it (norm=True, '
                  'norm_state=True)'),
    'flat_loss': ('check the learning rate (optim_wrapper.optimizer.lr and '
                  'param_scheduler), that the labels reach the loss (label '
                  'wiring, num_classes), and look for a silent layer '
                  'upstream'),
    'vanishing_grad': ('widen the surrogate gradient (a larger rectangle '
                       'width, a smaller sigmoid/atan alpha), use fewer time '
                       'steps, add normalisation, or add residual '
                       'connections'),
    # the end of the validation warnings; what the model holds that behaves
    # differently in evaluation mode comes before it (see _eval_differences)
    'val_silent': ("train longer (BatchNorm's running statistics follow the "
                   "batch statistics by its momentum, PyTorch's 0.1, once "
                   "per batch), or set norm_stats='per_step' (they are then "
                   "updated T times per batch); a larger evaluation batch "
                   "does not help (evaluation does not use the batch's "
                   "statistics); check what model.eval() does to a membrane "
                   "BatchNorm (norm_state), which also switches to running "
                   "statistics; or lower the layer's firing threshold "
                   "(theta)"),
    'val_saturated': ("train longer (BatchNorm's running statistics follow "
                      "the batch statistics by its momentum, PyTorch's 0.1, "
                      "once per batch), or set norm_stats='per_step' (they "
                      "are then updated T times per batch); a larger "
                      "evaluation batch does not help (evaluation does not "
                      "use the batch's statistics); check what model.eval() "
                      "does to a membrane BatchNorm (norm_state); or raise "
                      "the layer's firing threshold (theta)"),
}

#: Check interval when neither the config nor a LoggerHook gives one.
FALLBACK_INTERVAL = 50

#: Below this mean loss the loss has converged; "flat" means nothing there.
CONVERGED_LOSS = 1e-6


@HOOKS.register_module()
class TrainingHealthHook(Hook):
    """Warn about silent/saturated layers, a flat loss, vanishing gradients,
    and layers that fire in training but not in validation.

    See the module docstring for the rules, the scalars and the cost.

    Args:
        interval (int, optional): training iterations between two checks.
            ``None`` (default): the ``LoggerHook``'s interval (50 without
            one), so checks fall on the iterations the console logs.
        patience (int): consecutive checks a layer must stay silent,
            saturated or without gradient before the warning. Default 3.
        saturated_rate (float): firing rate in ``(0, 1]`` from which a
            spiking layer counts as saturated. Default 0.95.
        loss_window (int): checks over which the loss must move, ``>= 2``.
            Default 5.
        loss_tol (float): relative loss change below which the loss is
            flat. Default 1e-3.
        grad_tol (float): absolute gradient norm below which a layer's
            gradient has vanished. Default 1e-8.
        grad_ratio (float): fraction of the largest layer's gradient norm
            below which a layer's gradient has vanished. Default 1e-5.
        checks (tuple[str]): which conditions to watch, from ``CHECKS``.
            Default: all.
    """
    # after RuntimeInfoHook and the NaN guard: a non-finite loss stops the
    # run before it could be called flat
    priority = 'LOW'

    def __init__(self, interval=None, patience=3, saturated_rate=0.95,
                 loss_window=5, loss_tol=1e-3, grad_tol=1e-8,
                 grad_ratio=1e-5, checks=CHECKS):
        if interval is not None:
            _check_int('interval', interval, 1)
        _check_int('patience', patience, 1)
        _check_int('loss_window', loss_window, 2)
        _check_fraction('saturated_rate', saturated_rate)
        for name, value in (('loss_tol', loss_tol), ('grad_tol', grad_tol),
                            ('grad_ratio', grad_ratio)):
            if not _is_number(value) or value < 0:
                raise ConfigError(f'TrainingHealthHook.{name} must be a '
                                  f'number >= 0, got {value!r}')
        if isinstance(checks, str):
            checks = (checks, )
        unknown = sorted(set(checks) - set(CHECKS))
        if unknown:
            raise ConfigError(
                f'TrainingHealthHook.checks has unknown items {unknown}; '
                f'choose from {list(CHECKS)}')
        self.interval = interval
        self.patience = patience
        self.saturated_rate = float(saturated_rate)
        self.loss_window = loss_window
        self.loss_tol = float(loss_tol)
        self.grad_tol = float(grad_tol)
        self.grad_ratio = float(grad_ratio)
        self.checks = tuple(checks)
        #: every warning given, as ``(condition, layer or None, message)``
        self.warnings = []
        self._streaks = collections.Counter()  # (condition, layer) -> checks
        self._active = set()  # (condition, layer) warned, not yet recovered
        self._loss_sum, self._loss_count = 0.0, 0
        self._loss_means = collections.deque(maxlen=loss_window)
        self._window_start = collections.deque(maxlen=loss_window)
        self._probe = None  # what the current check iteration observes
        # {layer: [sum of rates, checks]} of the training checks since the
        # last validation, and the means the last validation compared with
        self._train_rate_sums = {}
        self._train_rates = {}
        self._val_counts = {}  # spikes of this validation epoch so far
        self._eval_probe = None  # (ExitStack, counts) of a val/test iteration
        self._test_counts, self._test_samples = {}, 0  # of this test epoch
        #: the firing rates and warnings of the last test epoch (see
        #: :meth:`after_test_epoch`); None before one, and on ranks but 0
        self.test_report = None

    # ------------------------------------------------------------------
    # the check iterations
    # ------------------------------------------------------------------
    def before_train(self, runner):
        if self.interval is None:
            self.interval = _logger_interval(runner)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.rank != 0 or not self.every_n_train_iters(
                runner, self.interval or FALLBACK_INTERVAL):
            return
        model = unwrap(runner.model)
        stack = contextlib.ExitStack()
        spikes = {}
        if set(SPIKE_CHECKS) & set(self.checks):
            spikes = stack.enter_context(_count_spikes(model))
        grads = {}
        if 'vanishing_grad' in self.checks:
            stack.enter_context(_keep_gradients(model, grads))
        self._probe = (stack, spikes, grads)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.rank != 0:
            return
        self._add_loss(runner, outputs)
        if self._probe is None:
            return
        stack, spikes, grads = self._probe
        self._probe = None
        stack.close()
        scalars = {}
        rates = firing_rates(spikes)
        self._check_spikes(runner, rates, scalars)
        self._note_train_rates(runner, rates)
        self._check_gradients(runner, grads, scalars)
        self._check_loss(runner, scalars)
        scalars['health/warnings'] = len(self._active)
        runner.visualizer.add_scalars(scalars, step=runner.iter + 1)

    # ------------------------------------------------------------------
    # validation: the spikes of every batch, compared with training
    # ------------------------------------------------------------------
    def before_val_epoch(self, runner):
        self._val_counts = {}
        self._drop_probe()

    def before_val_iter(self, runner, batch_idx, data_batch=None):
        # hooked for the model's val_step only: another hook's extra
        # forward after the epoch (the spike monitor's sample) is not counted
        if runner.rank != 0 or not set(VAL_CHECKS) & set(self.checks):
            return
        self._start_probe(runner)

    def after_val_iter(self, runner, batch_idx, data_batch=None,
                       outputs=None):
        self._end_probe(self._val_counts)

    def _start_probe(self, runner):
        """Count the spikes of this iteration's forward (validation or
        test)."""
        stack = contextlib.ExitStack()
        counts = stack.enter_context(_count_spikes(unwrap(runner.model)))
        self._eval_probe = (stack, counts)

    def _end_probe(self, totals):
        """Stop counting; add this iteration's counts into ``totals``.
        Returns whether a probe was running."""
        if self._eval_probe is None:
            return False
        stack, counts = self._eval_probe
        self._eval_probe = None
        stack.close()
        _add_counts(totals, counts)
        return True

    def _drop_probe(self):
        """Unhook the probe of a validation or test that raised."""
        if self._eval_probe is not None:
            self._eval_probe[0].close()
            self._eval_probe = None

    def after_val_epoch(self, runner, metrics=None):
        if runner.rank != 0 or not self._val_counts:
            return
        val_rates = firing_rates(self._val_counts)
        self._val_counts = {}
        # the training rates since the previous validation; without a
        # training check since then, the ones the previous one used
        if self._train_rate_sums:
            self._train_rates = {name: total / checks for name, (
                total, checks) in self._train_rate_sums.items()}
            self._train_rate_sums = {}
        self._check_val_spikes(runner, val_rates)
        scalars = {f'health/val_rate/{name}': rate
                   for name, (rate, _) in val_rates.items()}
        scalars['health/warnings'] = len(self._active)
        runner.visualizer.add_scalars(scalars, step=_val_step(runner))

    # ------------------------------------------------------------------
    # test: the spikes of the whole test set (bidl-test's health report)
    # ------------------------------------------------------------------
    def before_test_epoch(self, runner):
        self.test_report = None
        self._test_counts, self._test_samples = {}, 0
        self._drop_probe()

    def before_test_iter(self, runner, batch_idx, data_batch=None):
        if runner.rank != 0 or not {'silent', 'saturated'} & set(
                self.checks):
            return
        self._start_probe(runner)

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None):
        if self._end_probe(self._test_counts):
            self._test_samples += len(outputs or ())

    def after_test_epoch(self, runner, metrics=None):
        """Judge each spiking layer on its firing rate over the whole test
        set; warn at once (no ``patience``: a test set is the evidence) and
        keep :attr:`test_report`::

            {'samples': int, 'saturated_rate': float,
             'layers': {layer: {'firing_rate': float, 'spiking': bool,
                                'condition': 'silent' | 'saturated' | None}},
             'warnings': [{'condition', 'layer', 'message'}]}
        """
        if runner.rank != 0 or not self._test_counts:
            return
        rates = firing_rates(self._test_counts)
        self._test_counts = {}
        conditions = self.judge_rates(rates)
        model = unwrap(runner.model)
        report = dict(samples=self._test_samples,
                      saturated_rate=self.saturated_rate, layers={},
                      warnings=[])
        silent_before = []  # earlier layers silent over the test set
        for name, (rate, spiking) in rates.items():
            condition = conditions[name]
            report['layers'][name] = dict(firing_rate=rate, spiking=spiking,
                                          condition=condition)
            if condition is None:
                continue
            message = self._test_message(condition, name, rate,
                                         silent_before, model)
            if condition == 'silent':
                silent_before.append(name)
            report['warnings'].append(dict(condition=condition, layer=name,
                                           message=message))
            self.warnings.append((condition, name, message))
            runner.logger.warning(message)
            _to_tensorboard(runner, message, step=0)
        self.test_report = report

    def judge_rates(self, rates):
        """``{layer: 'silent' | 'saturated' | None}`` for ``{layer: (firing
        rate, spiking)}``, by the checks this hook makes: silent is no
        output at all, saturated a spiking layer's rate of at least
        ``saturated_rate`` (an analog layer has no saturation)."""
        judged = {}
        for name, (rate, spiking) in rates.items():
            condition = None
            if rate == 0 and 'silent' in self.checks:
                condition = 'silent'
            elif spiking and rate >= self.saturated_rate and \
                    'saturated' in self.checks:
                condition = 'saturated'
            judged[name] = condition
        return judged

    def _test_message(self, condition, layer, rate, silent_before, model):
        what = ('emitted no spike' if condition == 'silent' else
                f'fired at a rate >= {self.saturated_rate:g}')
        measured = f'firing rate {rate:.4g}'
        if condition == 'silent' and silent_before:
            # a layer fed by a silent one is silent because of it
            measured += (f'; earlier in the forward, {silent_before[0]!r} '
                         'is silent too: fix that one first')
        message = (f'TrainingHealthHook: {_subject(condition, layer)} {what} '
                   f'over the whole test set ({self._test_samples} samples, '
                   f'evaluation mode; {measured}). What usually fixes it: '
                   f'{ADVICE[condition]}.')
        differences = _eval_differences(model, layer, say_none=False)
        if differences:
            # a layer that fires in training can be silent (or saturated)
            # only in evaluation: the validation checks' advice
            unlike = ('fires in training' if condition == 'silent' else
                      'fires less in training')
            message += (f' {differences} If the layer {unlike}, what '
                        f'usually fixes it: {ADVICE["val_" + condition]}.')
        return message

    def _note_train_rates(self, runner, rates):
        """Add a training check's rates to the means the next validation
        compares with (training mode only: a local co-learning phase runs
        the model in eval mode)."""
        if not runner.model.training:
            return
        for name, (rate, _) in rates.items():
            total, checks = self._train_rate_sums.get(name, (0.0, 0))
            self._train_rate_sums[name] = (total + rate, checks + 1)

    def _check_val_spikes(self, runner, val_rates):
        """``val_rates``: ``{layer: (firing rate, spiking)}`` over a whole
        validation epoch, in forward order. A layer without a training rate
        yet (validation before any training check) is not judged."""
        model = unwrap(runner.model)
        silent_before = []  # earlier layers silent in evaluation
        for name, (rate, spiking) in val_rates.items():
            train = self._train_rates.get(name)
            if train is None:
                continue
            measured = (f'training rate {train:.4g}, evaluation rate '
                        f'{rate:.4g}')
            if rate == 0 and silent_before:
                # a layer fed by a silent one is silent because of it
                measured += (f'; earlier in the forward, '
                             f'{silent_before[0]!r} is silent in evaluation '
                             f'too: fix that one first')
            if rate == 0:
                silent_before.append(name)
            if 'val_silent' in self.checks:
                self._update(runner, 'val_silent', name,
                             train > 0 and rate == 0, measured, model=model)
            if 'val_saturated' in self.checks:
                self._update(runner, 'val_saturated', name,
                             spiking and train < self.saturated_rate
                             and rate >= self.saturated_rate, measured,
                             model=model)

    # ------------------------------------------------------------------
    # the four training conditions
    # ------------------------------------------------------------------
    def _check_spikes(self, runner, rates, scalars):
        """``rates``: ``{layer: (firing rate, spiking)}`` (see
        :func:`firing_rates`)."""
        judged = self.judge_rates(rates)
        for condition in ('silent', 'saturated'):
            if condition not in self.checks:
                continue
            found = {name for name, c in judged.items() if c == condition}
            scalars[f'health/{condition}_layers'] = len(found)
            for name, (rate, _) in rates.items():
                self._update(runner, condition, name, name in found,
                             f'firing rate {rate:.4g}')

    def _check_gradients(self, runner, grads, scalars):
        norms = layer_gradient_norms(grads)
        if not norms or not all(math.isfinite(n) for n in norms.values()):
            return  # no backward this iteration, or the NaN guard's case
        largest_name = max(norms, key=norms.get)
        largest = norms[largest_name]
        limit = max(self.grad_tol, self.grad_ratio * largest)
        scalars['health/vanishing_grad_layers'] = sum(
            n < limit for n in norms.values())
        if largest > 0:
            scalars['health/min_grad_ratio'] = min(norms.values()) / largest
        # a layer below a silent one gets no gradient through it (the
        # surrogate is zero far from the threshold): the silence is the cause
        silent = self._silent_now()
        upstream = (f'; silent layers now: {", ".join(silent)}, which pass '
                    'no gradient: fix those first' if silent else '')
        for name, norm in norms.items():
            ratio = f'{norm / largest:.2g}' if largest > 0 else 'n/a'
            self._update(
                runner, 'vanishing_grad', name, norm < limit,
                f'gradient norm {norm:.3g}, {ratio} of the largest '
                f'({largest_name}: {largest:.3g}){upstream}')

    def _check_loss(self, runner, scalars):
        if 'flat_loss' not in self.checks or not self._loss_count:
            return
        self._loss_means.append(self._loss_sum / self._loss_count)
        self._window_start.append(runner.iter + 2 - self._loss_count)
        self._loss_sum, self._loss_count = 0.0, 0
        if len(self._loss_means) < self.loss_window:
            return
        mean = sum(self._loss_means) / len(self._loss_means)
        if abs(mean) < CONVERGED_LOSS:
            return
        change = (max(self._loss_means) - min(self._loss_means)) / abs(mean)
        scalars['health/loss_rel_change'] = change
        first, last = self._loss_means[0], self._loss_means[-1]
        silent = self._silent_now()
        upstream = (f'; silent layers now: {", ".join(silent)}'
                    if silent else '')
        self._update(
            runner, 'flat_loss', None, change < self.loss_tol,
            f'mean loss {first:.5g} -> {last:.5g} over iterations '
            f'{self._window_start[0]}-{runner.iter + 1}, relative change '
            f'{change:.2g}{upstream}')

    def _silent_now(self):
        """The spiking layers warned silent and not recovered, sorted."""
        return sorted(layer for condition, layer in self._active
                      if condition == 'silent')

    def _add_loss(self, runner, outputs):
        """Sum the training loss between checks (global training only: a
        local co-learning phase runs the model in eval mode and learns
        without the loss, which then rightly stays put)."""
        if 'flat_loss' not in self.checks:
            return
        loss = outputs.get('loss') if isinstance(outputs, dict) else None
        if loss is None or not runner.model.training:
            self._loss_means.clear()
            self._window_start.clear()
            self._loss_sum, self._loss_count = 0.0, 0
            return
        value = float(loss.detach() if torch.is_tensor(loss) else loss)
        if math.isfinite(value):
            self._loss_sum += value
            self._loss_count += 1

    # ------------------------------------------------------------------
    # warn once, again only after a recovery
    # ------------------------------------------------------------------
    def _update(self, runner, condition, layer, bad, measured, model=None):
        """Count ``condition`` for ``layer`` at this check; warn when it
        held long enough (``patience`` checks for the training conditions
        of a layer, at once for the loss and the validation ones). ``model``
        (validation conditions) names what behaves differently in
        evaluation."""
        key = (condition, layer)
        if not bad:
            self._streaks.pop(key, None)
            if key in self._active:
                self._active.discard(key)
                runner.logger.info(
                    f'TrainingHealthHook: {_subject(condition, layer)} '
                    f'recovered {_when(runner, condition)} ({measured})')
            return
        self._streaks[key] += 1
        needed = self.patience if condition in PATIENT else 1
        if key in self._active or self._streaks[key] < needed:
            return
        self._active.add(key)
        message = self._message(runner, condition, layer, measured, model)
        self.warnings.append((condition, layer, message))
        runner.logger.warning(message)
        if getattr(runner, 'visualizer', None) is not None:
            _to_tensorboard(runner, message, _check_step(runner, condition))

    def _message(self, runner, condition, layer, measured, model=None):
        if condition in VAL_CHECKS:
            return self._val_message(runner, condition, layer, measured,
                                     model)
        checks = self._streaks[(condition, layer)]
        what = {
            'silent': 'emitted no spike',
            'saturated': f'fired at a rate >= {self.saturated_rate:g}',
            'vanishing_grad': 'has a vanishing gradient',
        }.get(condition)
        if what is None:
            head = (f'the training loss has not moved (relative change '
                    f'below loss_tol={self.loss_tol:g}; {measured})')
        else:
            every = 'every iteration' if self.interval == 1 else \
                f'every {self.interval} iterations'
            head = (f'{_subject(condition, layer)} {what} in {checks} '
                    f'consecutive checks ({every}) up to iteration '
                    f'{runner.iter + 1} ({measured})')
        return (f'TrainingHealthHook: {head}. What usually fixes it: '
                f'{ADVICE[condition]}.')

    def _val_message(self, runner, condition, layer, measured, model):
        what = ('emitted no spike' if condition == 'val_silent' else
                f'fired at a rate >= {self.saturated_rate:g}')
        return (f'TrainingHealthHook: {_subject(condition, layer)} fires in '
                f'training but {what} in evaluation mode over the whole '
                f'validation after iteration {_trained_iters(runner)} '
                f'({measured}). '
                f'{_eval_differences(model, layer)} What usually fixes it: '
                f'{ADVICE[condition]}.')


#: the conditions that must hold in ``patience`` consecutive checks
PATIENT = ('silent', 'saturated', 'vanishing_grad')


def _when(runner, condition):
    """``'at iteration N'`` of a training check, ``'at the validation after
    iteration N'`` of a validation."""
    if condition in VAL_CHECKS:
        return f'at the validation after iteration {_trained_iters(runner)}'
    return f'at iteration {runner.iter + 1}'


def _trained_iters(runner):
    """Iterations trained so far; 0 when validating without training
    (reading ``runner.iter`` there would build the training loop)."""
    loop = getattr(runner, '_train_loop', None)
    if loop is None or isinstance(loop, dict):
        return 0
    return runner.iter


def _val_step(runner):
    """The step mmengine's LoggerHook logs validation metrics at: the epoch,
    or the iteration with ``log_metric_by_epoch=False``."""
    loop = getattr(runner, '_train_loop', None)
    if loop is None or isinstance(loop, dict):
        return 0  # validation without training
    by_epoch = True
    for hook in runner.hooks:
        if isinstance(hook, LoggerHook):
            by_epoch = hook.log_metric_by_epoch
    return runner.epoch if by_epoch else runner.iter


def _check_step(runner, condition):
    """The step of the check that found ``condition``: the validation's
    for the validation checks, else the training iteration's."""
    if condition in VAL_CHECKS:
        return _val_step(runner)
    return runner.iter + 1


def _to_tensorboard(runner, message, step):
    """``message`` as TensorBoard text (tag ``health/warning``): mmengine's
    visualizer has no text, its TensorBoard backend's writer has."""
    backends = getattr(runner.visualizer, '_vis_backends', {}) or {}
    for backend in backends.values():
        writer = getattr(backend, 'experiment', None)
        if hasattr(writer, 'add_text'):
            writer.add_text('health/warning', message, step)


def _eval_differences(model, layer, say_none=True):
    """A sentence naming what in ``model`` computes differently in
    evaluation mode than in training: the BatchNorms of ``layer``'s block
    (else of the model), training noise of neurons, dropout. Without any
    of them: 'The model has no BatchNorm.', or '' with ``say_none=False``."""
    if model is None:
        return ''
    block = layer.rsplit('.', 1)[0] + '.' if '.' in layer else ''
    norms, noisy, dropouts = [], [], []
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            norms.append(name)
        elif isinstance(module, nn.modules.dropout._DropoutNd) and \
                module.p > 0:
            dropouts.append(name)
        elif _is_number(getattr(module, 'noise', None)) and module.noise > 0:
            noisy.append(name)
    near = [name for name in norms if name.startswith(block)]
    parts = []
    if near:
        parts.append(f'Its block normalises with BatchNorm '
                     f'({", ".join(near)}): batch statistics in training, '
                     f'running statistics in evaluation.')
    elif norms:
        parts.append(f'The model normalises with BatchNorm ({_few(norms)}): '
                     f'batch statistics in training, running statistics in '
                     f'evaluation.')
    elif say_none:
        parts.append('The model has no BatchNorm.')
    if noisy:
        parts.append(f'Training noise (off in evaluation): {_few(noisy)}.')
    if dropouts:
        parts.append(f'Dropout (off in evaluation): {_few(dropouts)}.')
    return ' '.join(parts)


def _few(names, shown=3):
    more = f' and {len(names) - shown} more' if len(names) > shown else ''
    return ', '.join(names[:shown]) + more


def _subject(condition, layer):
    if layer is None:
        return 'the training loss'
    kind = 'layer' if condition == 'vanishing_grad' else 'spiking layer'
    return f'{kind} {layer!r}'


# ----------------------------------------------------------------------
# spikes, counted in the training forward
# ----------------------------------------------------------------------
@contextlib.contextmanager
def _count_spikes(model):
    """Yield ``{layer: [output sum (a 0-d tensor, not yet read), outputs,
    spiking]}``, filled during the block (summed over the calls of a layer
    called several times).

    The spiking layers are hooked exactly as :class:`SpikeMonitorHook` does
    (:func:`~bidl_train.models.monitor.hooked_spike_sources`), but each
    output costs one sum and no host sync: silence and saturation need the
    number of spikes, not the per-neuron statistics the monitor plots (which
    take ~10 passes over the output, a quarter of the demo's iteration;
    ``count_nonzero`` alone costs 13 sums on CPU).
    """
    counts = {}

    def make_hook(name):

        def hook(module, args, output):
            out = (output[0] if isinstance(output, tuple) else output)
            out = out.detach()
            # spikes are 0/1: their sum counts them. Analog (LIAF) layers
            # emit values: the sum of |values| is 0 exactly when they are
            # silent, and they are never called saturated
            spiking = getattr(module, 'mode', 'spike') == 'spike'
            total = (out if spiking else out.abs()).sum(dtype=torch.float32)
            if name in counts:
                counts[name][0] = counts[name][0] + total
                counts[name][1] += out.numel()
            else:
                counts[name] = [total, out.numel(), spiking]

        return hook

    with hooked_spike_sources(model, make_hook):
        yield counts


def _add_counts(totals, counts):
    """Add one forward's :func:`_count_spikes` counts into ``totals`` (no
    host sync)."""
    for name, (total, size, spiking) in counts.items():
        if name in totals:
            totals[name][0] = totals[name][0] + total
            totals[name][1] += size
        else:
            totals[name] = [total, size, spiking]


def firing_rates(counts):
    """``{layer: (firing rate, spiking)}`` from :func:`_count_spikes`'s
    counts, with one host sync per device. The rate is spikes per neuron per
    step (mean ``|output|`` for an analog layer)."""
    names = [name for name, (_, size, _) in counts.items() if size]
    sums = _read([counts[name][0] for name in names])
    return {name: (total / counts[name][1], counts[name][2])
            for name, total in zip(names, sums)}


def _read(scalars):
    """Python numbers of 0-d tensors, one transfer per device."""
    by_device = {}
    for i, t in enumerate(scalars):
        by_device.setdefault(t.device, []).append(i)
    values = [None] * len(scalars)
    for indices in by_device.values():
        stacked = torch.stack([scalars[i].double() for i in indices])
        for i, v in zip(indices, stacked.cpu().tolist()):
            values[i] = v
    return values


# ----------------------------------------------------------------------
# gradients, read as autograd finishes them
# ----------------------------------------------------------------------
@contextlib.contextmanager
def _keep_gradients(model, grads):
    """Fill ``grads`` with ``{(layer, param name): grad}`` during the block.

    mmengine's optimizer wrapper zeroes the gradients (sets them to None)
    before ``after_train_iter``; a post-accumulate hook keeps a reference to
    each finished gradient (no copy, no computation), so the norms can be
    taken afterwards. With gradient accumulation the last call holds the
    accumulated gradient.
    """
    handles = []
    for layer, module in model.named_modules():
        for pname, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue

            def keep(p, key=(layer, pname)):
                grads[key] = p.grad

            handles.append(param.register_post_accumulate_grad_hook(keep))
    try:
        yield grads
    finally:
        for handle in handles:
            handle.remove()


def layer_gradient_norms(grads):
    """``{layer: 2-norm of its parameters' gradients}`` from ``{(layer,
    param name): grad}``: one ``_foreach_norm`` per dtype and device and one
    host sync. Sparse gradients and missing ones are left out."""
    keys, groups = [], {}
    for key, grad in grads.items():
        if grad is None or grad.is_sparse or not grad.is_floating_point():
            continue
        groups.setdefault((grad.device, grad.dtype), []).append((key, grad))
    if not groups:
        return {}
    squares = []
    with torch.no_grad():
        for members in groups.values():
            keys += [key for key, _ in members]
            norms = torch._foreach_norm([g for _, g in members])
            squares.append(torch.stack(norms).double().cpu().square())
    squares = torch.cat(squares).tolist()
    totals = {}
    for (layer, _), square in zip(keys, squares):
        totals[layer] = totals.get(layer, 0.0) + square
    return {layer: math.sqrt(total) for layer, total in totals.items()}


# ----------------------------------------------------------------------
# settings
# ----------------------------------------------------------------------
def _logger_interval(runner):
    for hook in runner.hooks:
        if isinstance(hook, LoggerHook):
            return hook.interval
    return FALLBACK_INTERVAL


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_int(name, value, minimum):
    if not isinstance(value, int) or isinstance(value, bool) \
            or value < minimum:
        raise ConfigError(f'TrainingHealthHook.{name} must be an int >= '
                          f'{minimum}, got {value!r}')


def _check_fraction(name, value):
    if not _is_number(value) or not 0 < value <= 1:
        raise ConfigError(f'TrainingHealthHook.{name} must be a number in '
                          f'(0, 1], got {value!r}')
