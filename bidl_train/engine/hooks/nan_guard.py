"""Stop training before a poisoned model is used or saved.

Three things poison a run, and each is caught here before any checkpoint is
written from it:

* a NaN/Inf loss (the next optimizer step spreads it into every weight);
* non-finite weights or buffers from a finite loss: one step with an absurd
  learning rate overflows a parameter, or the next forward pass overflows a
  BatchNorm running statistic, a neuron buffer or a plastic layer's weight;
* divergence: a finite loss that explodes (Adam at lr=1e6 takes the demo
  from 1.4 to 3e6 in one step and never becomes NaN). The rule: stop when the loss exceeds
  ``divergence_factor`` times the median loss of the run's first
  ``reference_iters`` iterations. The median of the *first* iterations is
  the loss of a barely trained model (``ln C`` for cross-entropy over C
  classes, the target variance for MSE), so the ratio is scale-free and
  needs no knowledge of the loss. A healthy run stays below its starting
  loss up to spikes of a few times; the default factor 1000 leaves two
  orders of magnitude of room and still stops an exploding run within a
  few iterations (it grows by orders of magnitude per step). The reference
  is stored in every checkpoint, so a resumed run keeps its original scale.

The model's parameters and buffers are checked after every training
iteration (one fused norm per dtype and device, see :class:`TensorCheck`;
about 0.2-0.5 ms on CPU for the demo network, 0.5 % of its iteration),
again at the end of every training and validation epoch, above the priority
of mmengine's ``CheckpointHook`` so the run stops before it saves, and every
tensor of a checkpoint is checked once more just before it is written, as
the last line. The error names the first
non-finite tensor, the epoch and iteration, and the last checkpoint that is
known to be finite (written by this run after the same check, the checkpoint
the run started from, or the work dir's ``last_checkpoint`` after loading and
checking it), never a file written from poisoned weights. "Good" means
finite: a checkpoint saved right after the step that diverged, before any
loss was computed from its weights, is finite and kept; the next iteration
then stops the run.
"""
import math
import numbers
import os.path as osp
import statistics

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from bidl_train.errors import BidlError, ConfigError
from bidl_train.registry import HOOKS

#: top-level checkpoint key holding the divergence reference
CHECKPOINT_KEY = 'nan_guard'

_ADVICE = ('Lower the learning rate, enable gradient clipping '
           '(optim_wrapper.clip_grad=dict(max_norm=...)) or check the inputs '
           'of that batch.')


class NonFiniteLossError(BidlError):
    """Training produced a NaN/Inf loss."""


class NonFiniteWeightsError(BidlError):
    """A parameter or buffer of the model became NaN/Inf."""


class DivergenceError(BidlError):
    """The training loss exploded while staying finite."""


@HOOKS.register_module()
class NanGuardHook(Hook):
    """Stop training at a non-finite loss, weight or buffer, or divergence.

    Args:
        check_all_losses (bool): check every ``loss*`` entry of the model's
            output for NaN/Inf, not only the total.
        divergence_factor (float, optional): stop when the total loss
            exceeds this many times the reference loss (see the module
            docstring). ``None`` turns the divergence rule off.
        reference_iters (int): the reference is the median total loss of
            this many first training iterations (fewer until they ran).
    """
    # above CheckpointHook (VERY_LOW) on after_train_iter/_epoch and
    # after_val_epoch: the run stops before the checkpoint is saved
    priority = 'ABOVE_NORMAL'

    def __init__(self, check_all_losses=True, divergence_factor=1e3,
                 reference_iters=20):
        if divergence_factor is not None and not (
                isinstance(divergence_factor, numbers.Real)
                and divergence_factor > 1):
            raise ConfigError(
                'NanGuardHook: divergence_factor must be a number > 1 (or '
                f'None to turn the divergence check off), got '
                f'{divergence_factor!r}')
        if not isinstance(reference_iters, int) or reference_iters < 1:
            raise ConfigError('NanGuardHook: reference_iters must be an '
                              f'integer >= 1, got {reference_iters!r}')
        self.check_all_losses = check_all_losses
        self.divergence_factor = divergence_factor
        self.reference_iters = reference_iters
        self.reference_losses = []
        self._saved = []  # checkpoints this run wrote (checked), in order
        self._start = None  # the checkpoint it started from, if finite
        self._hub_paths = {}  # checkpoint paths mmengine's hub names
        self._loaded_bad = None  # first non-finite tensor of a loaded ckpt
        self._warned_reference = False
        self._iter_check = None  # the model's tensors, collected per epoch

    # ------------------------------------------------------------------
    # start: the checkpoint the run starts from must be finite too
    # ------------------------------------------------------------------
    def after_load_checkpoint(self, runner, checkpoint):
        # also called by bidl-test, which must still evaluate (and warn
        # about) a poisoned checkpoint: remember, refuse in before_train
        self._loaded_bad = first_nonfinite_in_checkpoint(checkpoint)
        saved = checkpoint.get(CHECKPOINT_KEY) or {}
        if getattr(runner, '_resume', False):
            # a resumed run keeps the loss scale of its beginning
            self.reference_losses = [
                float(v) for v in saved.get('reference_losses', [])
            ][:self.reference_iters]

    def before_train(self, runner):
        start = _start_checkpoint(runner)
        bad = self._loaded_bad or first_nonfinite(_named_tensors(runner))
        if bad is not None and start is not None:
            raise NonFiniteWeightsError(
                f'{bad} is non-finite (NaN/Inf) in the checkpoint this run '
                f'starts from ({start}); training it is pointless. Start '
                'from an earlier checkpoint (--resume PATH, or '
                'load_from=PATH without --resume).')
        if bad is not None:
            raise NonFiniteWeightsError(
                f'{bad} is non-finite (NaN/Inf) before the first training '
                'iteration: the model\'s initialisation produced it; check '
                'that layer\'s parameters and init_cfg in the config.')
        self._start = start
        self._hub_paths = _hub_checkpoint_paths(runner)

    def before_train_epoch(self, runner):
        # collecting the named tensors costs as much as checking them: do
        # it once per epoch (the epoch-end and save checks collect afresh,
        # so a tensor replaced mid-epoch is still checked before saving)
        self._iter_check = TensorCheck(_named_tensors(runner))

    # ------------------------------------------------------------------
    # every iteration: loss, weights and buffers, divergence
    # ------------------------------------------------------------------
    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        where = (f'epoch {runner.epoch + 1}, iteration {runner.iter + 1} '
                 f'(batch {batch_idx + 1} of the epoch)')
        losses = self._losses(outputs or {})
        if self._iter_check is None:
            self.before_train_epoch(runner)
        bad_tensor = self._iter_check.first_bad()
        total = losses.get('loss')
        # one scalar all-reduce: every rank takes the same decision, so no
        # rank is left waiting in the next gradient all-reduce
        total, bad_anywhere = _agree(total, bad_tensor is not None)
        if total is not None:
            losses['loss'] = total
        for key, value in losses.items():
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f'{key} became {value} at {where}; training stopped and '
                    f'{self._last_good_text(runner)}. {_ADVICE}')
        if bad_anywhere:
            name = bad_tensor or 'a parameter or buffer on another rank'
            loss = '' if total is None else f' ({total:.4g})'
            raise NonFiniteWeightsError(
                f'{name} became non-finite (NaN/Inf) at {where} although '
                f'the loss was finite{loss}; training stopped before saving '
                f'it and {self._last_good_text(runner)}. {_ADVICE}')
        if total is not None:
            self._check_divergence(runner, total, where)

    def _losses(self, outputs):
        """The loss entries of the iteration's output as Python floats."""
        keys = [k for k in outputs if k.startswith('loss')
                ] if self.check_all_losses else ['loss']
        losses = {}
        for key in keys:
            value = outputs.get(key)
            if value is None:
                continue
            losses[key] = float(value.detach()) if isinstance(
                value, torch.Tensor) else float(value)
        return losses

    def _check_divergence(self, runner, loss, where):
        if self.divergence_factor is None:
            return
        # the reference comes from earlier iterations only: an explosion in
        # the second iteration must not raise its own yardstick
        if self.reference_losses:
            reference = statistics.median(self.reference_losses)
            if reference > 0 and loss > self.divergence_factor * reference:
                raise DivergenceError(
                    f'loss diverged: {loss:.4g} at {where} is more than '
                    f'{self.divergence_factor:g} x the median loss of the '
                    f'first {_iterations(len(self.reference_losses))} '
                    f'({reference:.4g}); training stopped and '
                    f'{self._last_good_text(runner)}. {_ADVICE} If this '
                    'loss legitimately grows, raise NanGuardHook\'s '
                    'divergence_factor in custom_hooks (None turns it off).')
            if reference <= 0 and not self._warned_reference:
                self._warned_reference = True
                runner.logger.warning(
                    'NanGuardHook: the starting loss is not positive '
                    f'({reference:.4g}), so the divergence rule (a multiple '
                    'of it) is off for this run')
        if len(self.reference_losses) < self.reference_iters:
            self.reference_losses.append(loss)

    # ------------------------------------------------------------------
    # before CheckpointHook saves at the end of an epoch / validation
    # ------------------------------------------------------------------
    def after_train_epoch(self, runner):
        self._check_model(runner, f'the end of epoch {runner.epoch + 1}')

    def after_val_epoch(self, runner, metrics=None):
        # weights that change outside the optimizer (plasticity) are
        # checked again before the best checkpoint is saved
        self._check_model(runner, 'the validation')

    def _check_model(self, runner, when):
        bad = first_nonfinite(_named_tensors(runner))
        if bad is not None:
            raise NonFiniteWeightsError(
                f'{bad} became non-finite (NaN/Inf) at {when} after '
                f'iteration {runner.iter}; training stopped before saving it '
                f'and {self._last_good_text(runner)}. {_ADVICE}')

    # ------------------------------------------------------------------
    # the last line: nothing non-finite is written
    # ------------------------------------------------------------------
    def before_save_checkpoint(self, runner, checkpoint):
        bad = first_nonfinite_in_checkpoint(checkpoint)
        if bad is not None:
            raise NonFiniteWeightsError(
                f'refusing to save a checkpoint after iteration '
                f'{runner.iter}: {bad} is non-finite (NaN/Inf); '
                f'training stopped and {self._last_good_text(runner)}. '
                f'{_ADVICE}')
        checkpoint[CHECKPOINT_KEY] = dict(
            reference_losses=list(self.reference_losses))
        # CheckpointHook names the file in the message hub before saving
        hub = _hub_checkpoint_paths(runner)
        for key, path in hub.items():
            if path != self._hub_paths.get(key):
                self._saved.append(path)
        self._hub_paths = hub

    def _last_good_text(self, runner):
        path = self.last_good_checkpoint(runner)
        if path is not None:
            return f'the last good checkpoint is {path} (verified finite)'
        marker = _read_marker(runner.work_dir)
        if marker and osp.isfile(marker):
            return (f'{marker}, named by {runner.work_dir}/last_checkpoint, '
                    'holds NaN/Inf or cannot be read: do not resume from it')
        return 'no checkpoint had been saved, so none holds these weights'

    def last_good_checkpoint(self, runner):
        """The newest existing checkpoint known to hold only finite values.

        This run's own saves (checked before writing; epoch/iteration
        checkpoints before ``best_*``), then the checkpoint it started from
        (checked at the start). Otherwise the work dir's ``last_checkpoint``
        (a previous run's) is loaded and checked now: it may have been
        written from poisoned weights by a run without this guard.
        """
        # epoch/iteration checkpoints first: best_* hold the same weights
        # as one of them but are not what --resume picks
        newest_first = self._saved[::-1]
        ordered = [p for p in newest_first if not _is_best(p)] + [
            p for p in newest_first if _is_best(p)
        ] + ([self._start] if self._start else [])
        for path in ordered:
            if osp.isfile(path):
                return path
        marker = _read_marker(runner.work_dir)
        if marker and osp.isfile(marker) and checkpoint_is_finite(marker):
            return marker
        return None


# ----------------------------------------------------------------------
# finiteness checks
# ----------------------------------------------------------------------
class TensorCheck:
    """Which of a fixed set of named tensors holds NaN/Inf.

    ``first_bad()`` runs one ``_foreach_norm`` per dtype and device and one
    host sync: the 2-norm is NaN/Inf whenever the tensor holds a NaN/Inf
    (fused on GPU; cheaper on CPU than the max-norm). A finite tensor whose
    norm overflows is a false alarm that the per-tensor search then clears,
    so the answer is exact; only that rare path costs more.
    """

    def __init__(self, named_tensors):
        self.named = [(name, t.detach()) for name, t in named_tensors
                      if torch.is_tensor(t) and t.is_floating_point()
                      and t.numel()]
        groups = {}
        for _, t in self.named:
            groups.setdefault((t.device, t.dtype), []).append(t)
        self.groups = list(groups.values())

    def first_bad(self):
        with torch.no_grad():
            norms = [torch.stack(torch._foreach_norm(group)).sum()
                     for group in self.groups]
            if not norms or bool(torch.isfinite(torch.stack(
                    [n.float().cpu() for n in norms])).all()):
                return None
            for name, t in self.named:
                if not bool(torch.isfinite(t).all()):
                    return name
        return None


def first_nonfinite(named_tensors):
    """Name of the first tensor holding NaN/Inf, or None if all are finite."""
    return TensorCheck(named_tensors).first_bad()


def first_nonfinite_in_checkpoint(checkpoint):
    """First non-finite tensor of a checkpoint's weights or optimizer state.

    Named as ``state_dict`` keys (``backbone.layers.0.norm.running_var``)
    or ``optimizer.state.3.exp_avg_sq``.
    """
    named = list((checkpoint.get('state_dict') or {}).items())
    if checkpoint.get('optimizer') is not None:
        named += list(_walk(checkpoint['optimizer'], 'optimizer'))
    return first_nonfinite(named)


def checkpoint_is_finite(path):
    """Load ``path`` safely and check every tensor; False if unreadable."""
    from bidl_train.engine.checkpoint import safe_load
    try:
        checkpoint = safe_load(path)
    except BidlError:
        return False
    return first_nonfinite_in_checkpoint(checkpoint) is None


def _walk(value, prefix):
    """(dotted name, tensor) for every tensor inside nested dicts/lists."""
    if torch.is_tensor(value):
        yield prefix, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f'{prefix}.{key}')
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _walk(item, f'{prefix}.{i}')


def _named_tensors(runner):
    model = runner.model.module if is_model_wrapper(
        runner.model) else runner.model
    yield from model.named_parameters()
    yield from model.named_buffers()


def _agree(total, bad):
    """Average the loss and OR the bad-tensor flag over ranks (if any)."""
    if get_world_size() == 1:
        return total, bad
    both = torch.tensor(
        [0.0 if total is None else total, float(bad)], dtype=torch.float64)
    all_reduce(both, op='sum')
    total = None if total is None else float(both[0]) / get_world_size()
    return total, bool(both[1] > 0)


# ----------------------------------------------------------------------
# which checkpoint files exist and where they came from
# ----------------------------------------------------------------------
def _hub_checkpoint_paths(runner):
    """``last_ckpt`` and ``best_ckpt*`` as CheckpointHook records them."""
    info = runner.message_hub.runtime_info
    return {
        key: value
        for key, value in info.items()
        if (key == 'last_ckpt' or key.startswith('best_ckpt'))
        and isinstance(value, str)
    }


def _start_checkpoint(runner):
    """The checkpoint file this run loaded or resumed from, if any."""
    load_from = getattr(runner, '_load_from', None)
    if load_from:
        return load_from
    if getattr(runner, '_resume', False):
        from mmengine.runner import find_latest_checkpoint
        return find_latest_checkpoint(runner.work_dir)
    return None


def _read_marker(work_dir):
    marker = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(marker):
        with open(marker) as f:
            return f.read().strip() or None
    return None


def _iterations(n):
    return '1 iteration' if n == 1 else f'{n} iterations'


def _is_best(path):
    return osp.basename(path).startswith('best_')
