"""Run a stateless module over every time step at once.

A conv, BatchNorm, pooling, linear, flatten or dropout layer has no memory
between steps, so the ``T`` steps of ``[T, B, ...]`` fold into the batch:
``y = module(x.reshape(T*B, ...)).reshape(T, B, ...)`` runs one large call
instead of ``T`` small ones. BatchNorm therefore normalises over ``T*B``
samples in the multi-step form and over ``B`` in the single-step form; in
eval mode (running statistics) the two forms agree exactly.

Training-time BatchNorm statistics (``norm_stats``), on the layers here, on
:class:`~bidl_train.layers.SpikingSequential` and on the backbones that
take it:

* ``'all_steps'`` (default): the folded call above; a BatchNorm normalises
  over ``T*B`` samples and updates its running statistics once per batch
  (BIDL's inner-loop "it" form).
* ``'per_step'``: in training mode the multi-step call runs the
  single-step form over T (:func:`run_per_step`), so every BatchNorm
  normalises each time step over the batch alone and updates its running
  statistics T times per batch: BIDL's outer-loop "itout" form, which its
  published configs train with. Eval mode is the folded call either way
  (running statistics: the same numbers).
"""
import torch
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.neurons import build_module
from bidl_train.registry import MODELS

__all__ = ['NORM_STATS', 'TimeFold', 'check_norm_stats', 'fold_time',
           'run_per_step', 'unfold_time']

NORM_STATS = ('all_steps', 'per_step')


def check_norm_stats(owner, value):
    """``value`` if it is one of :data:`NORM_STATS`, else a ConfigError."""
    if value not in NORM_STATS:
        raise ConfigError(f"{owner}: norm_stats must be 'all_steps' (one "
                          "BatchNorm call over T*B) or 'per_step' (BIDL's "
                          f"outer loop: each step over B), got {value!r}")
    return value


def run_per_step(module, x_seq):
    """BIDL's outer loop: ``module.step`` over the steps of ``x_seq``,
    outputs stacked to ``[T, B, ...]``."""
    state, outputs = None, []
    for x_t in x_seq.unbind(0):
        y_t, state = module.step(x_t, state)
        outputs.append(y_t)
    return torch.stack(outputs, 0)


def fold_time(x_seq, owner):
    """``[T, B, ...] -> [T*B, ...]``; returns the folded tensor and ``T``."""
    if x_seq.dim() < 2:
        raise ConfigError(f'{owner}: expected a [T, B, ...] tensor (time '
                          f'first), got shape {tuple(x_seq.shape)}')
    return x_seq.flatten(0, 1), x_seq.shape[0]


def unfold_time(y, steps):
    """``[T*B, ...] -> [T, B, ...]``."""
    return y.unflatten(0, (steps, y.shape[0] // steps))


@MODELS.register_module()
class TimeFold(nn.Module):
    """Wrap a stateless ``module`` (an instance or a config dict).

    ``forward(x_seq)`` on ``[T, B, ...]``; ``step(x_t, state=None)`` applies
    the module to one ``[B, ...]`` step and returns ``(y_t, None)``.
    ``norm_stats``: see the module docstring.
    """

    def __init__(self, module, norm_stats='all_steps'):
        super().__init__()
        self.module = build_module(module, 'TimeFold', 'wrapped module')
        self.norm_stats = check_norm_stats('TimeFold', norm_stats)

    def forward(self, x_seq):
        owner = f'TimeFold({type(self.module).__name__})'
        if self.training and self.norm_stats == 'per_step':
            fold_time(x_seq, owner)  # the same input check
            return run_per_step(self, x_seq)
        x, steps = fold_time(x_seq, owner)
        return unfold_time(self.module(x), steps)

    def step(self, x_t, state=None):
        return self.module(x_t), None
