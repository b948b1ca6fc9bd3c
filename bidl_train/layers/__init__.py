"""Spiking building blocks; importing registers them in ``MODELS``.

Every layer has a multi-step ``forward(x_seq)`` on ``[T, B, ...]`` and a
single-step ``step(x_t, state=None) -> (y_t, state)`` giving the same numbers,
except the temporal attention layers (TA, TCJA), which attend over the whole
sequence and refuse ``step`` with a ConfigError.
"""
from .aggregation import Aggregation
from .attention import TA, TCJA
from .lif_layers import Conv1dLif, Conv2dLif, Conv3dLif, FcLif, Lif1d, Lif2d
from .neuron_builder import build_neuron
from .sequential import SpikingSequential
from .time_fold import (NORM_STATS, TimeFold, check_norm_stats, fold_time,
                        per_step_batchnorm, unfold_time)

__all__ = [
    'Aggregation', 'Conv1dLif', 'Conv2dLif', 'Conv3dLif', 'FcLif', 'Lif1d',
    'Lif2d', 'SpikingSequential', 'TA', 'TCJA', 'TimeFold', 'build_neuron',
    'fold_time', 'unfold_time', 'NORM_STATS', 'check_norm_stats',
    'per_step_batchnorm'
]
