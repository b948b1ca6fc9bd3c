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

__all__ = ['Aggregation']

_MODES = ('mean', 'sum', 'last')


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
        return {'sum': torch.zeros_like(x_t),
                'count': torch.zeros((), dtype=x_t.dtype, device=x_t.device)}

    def step(self, x_t, state=None):
        """Aggregate of the steps so far; ``state = {'sum', 'count'}``."""
        if state is None:
            state = self.init_state(x_t)
        total = state['sum'] + x_t
        count = state['count'] + 1
        if self.mode == 'mean':
            y = total / count
        elif self.mode == 'sum':
            y = total
        else:
            y = x_t
        return y, {'sum': total, 'count': count}

    def extra_repr(self):
        return f'mode={self.mode!r}'
