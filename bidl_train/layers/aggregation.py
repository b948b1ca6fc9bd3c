"""Temporal aggregation: ``[T, B, ...] -> [B, ...]``.

``mean`` (firing rate), ``sum`` (spike count) or ``last`` (the final step).
The single-step form keeps the running sum and the number of steps seen as
state and returns the aggregate of the steps so far, so after ``T`` steps it
equals the multi-step result.
"""
import torch
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.registry import MODELS

__all__ = ['Aggregation', 'fresh_aggregate', 'running_aggregate']

_MODES = ('mean', 'sum', 'last')


def fresh_aggregate(x_t):
    """The state of a running aggregate that has seen no step: a zero
    ``sum`` shaped like ``x_t`` and a zero scalar ``count``."""
    return {'sum': torch.zeros_like(x_t),
            'count': torch.zeros((), dtype=x_t.dtype, device=x_t.device)}


def running_aggregate(mode, x_t, state=None):
    """``(aggregate of the steps so far, new state)`` for one step ``x_t``.

    The one single-step temporal aggregation: the ``Aggregation`` layer, the
    classification heads and the deployed ``AggregateNode`` all run it, so
    their ``sum``/``count`` state is the same. ``state`` None: fresh.
    """
    if state is None:
        state = fresh_aggregate(x_t)
    total = state['sum'] + x_t
    # ones_like, not ``+ 1``: tracing turns a Python 1 into a [1] constant,
    # which would give the scalar count a batch axis (deployment)
    count = state['count'] + torch.ones_like(state['count'])
    if mode == 'mean':
        y = total / count
    elif mode == 'sum':
        y = total
    else:
        y = x_t
    return y, {'sum': total, 'count': count}


@MODELS.register_module()
class Aggregation(nn.Module):
    """Aggregate over the leading time axis (``mode``: mean, sum, last)."""

    def __init__(self, mode='mean'):
        super().__init__()
        if mode not in _MODES:
            raise ConfigError(
                f'Aggregation: mode must be one of {_MODES}, got {mode!r}')
        self.mode = mode

    def forward(self, x_seq):
        if x_seq.dim() < 2:
            raise ConfigError('Aggregation: expected a [T, B, ...] tensor, '
                              f'got shape {tuple(x_seq.shape)}')
        if self.mode == 'mean':
            return x_seq.mean(0)
        if self.mode == 'sum':
            return x_seq.sum(0)
        return x_seq[-1]

    def init_state(self, x_t):
        """No steps seen: a zero sum and a zero count."""
        return fresh_aggregate(x_t)

    def step(self, x_t, state=None):
        """Aggregate of the steps so far; ``state = {'sum', 'count'}``."""
        return running_aggregate(self.mode, x_t, state)

    def extra_repr(self):
        return f'mode={self.mode!r}'
