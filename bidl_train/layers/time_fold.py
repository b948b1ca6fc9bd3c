"""Run a stateless module over every time step at once.

A conv, BatchNorm, pooling, linear, flatten or dropout layer has no memory
between steps, so the ``T`` steps of ``[T, B, ...]`` fold into the batch:
``y = module(x.reshape(T*B, ...)).reshape(T, B, ...)`` runs one large call
instead of ``T`` small ones. BatchNorm therefore normalises over ``T*B``
samples in the multi-step form and over ``B`` in the single-step form; in
eval mode (running statistics) the two forms agree exactly.
"""
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.neurons import build_module
from bidl_train.registry import MODELS

__all__ = ['TimeFold', 'fold_time', 'unfold_time']


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
    """

    def __init__(self, module):
        super().__init__()
        self.module = build_module(module, 'TimeFold', 'wrapped module')

    def forward(self, x_seq):
        x, steps = fold_time(x_seq, f'TimeFold({type(self.module).__name__})')
        return unfold_time(self.module(x), steps)

    def step(self, x_t, state=None):
        return self.module(x_t), None
