"""Synapse + neuron layers in BIDL's style: FcLif, Conv{1,2,3}dLif, Lif1d/2d.

Each layer runs its stateless synapse (linear or conv, BatchNorm, pooling)
once on the time-folded ``[T*B, ...]`` input, then the neuron's recurrence
over T. ``step(x_t, state)`` runs the same layer on one ``[B, ...]`` step,
with ``state`` the neuron's state dict.

Order inside the conv layers follows BIDL's ``Conv2dLif``:
``conv -> max-pool -> BatchNorm -> neuron``. Pooling acts on the synaptic
current before it reaches the membrane (not on the output spikes), so the
neuron population is the pooled map, which is also cheaper: the recurrence
runs on a quarter of the positions with ``pool=2``.

The neuron is a submodule named ``neuron`` (a :class:`BaseNeuron`), so a
forward hook on it sees the layer's spikes.
"""
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.registry import MODELS
from .neuron_builder import build_neuron
from .time_fold import (check_norm_stats, fold_time, per_step_batchnorm,
                        unfold_time)

__all__ = ['FcLif', 'Conv1dLif', 'Conv2dLif', 'Conv3dLif', 'Lif1d', 'Lif2d']


def _check_positive_int(owner, name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f'{owner}: {name} must be a positive int, got '
                          f'{value!r}')


def check_input_dims(owner, x, in_dims, time_axis):
    """Refuse an input whose rank is not ``[T, B, <in_dims>]`` (multi-step)
    or ``[B, <in_dims>]`` (single step), naming the layer."""
    expected = in_dims + (1 if time_axis else 0) + 1
    if x.dim() != expected:
        what = '[T, B, ...]' if time_axis else '[B, ...]'
        raise ConfigError(
            f'{owner}: expected a {expected}-dim {what} input, got shape '
            f'{tuple(x.shape)}')


class _SynapseLif(nn.Module):
    """Shared forward/step: ``neuron(synapse(x))``.

    ``norm_stats`` (attribute, set by :meth:`set_norm_stats`):
    ``'all_steps'`` runs the synapse's BatchNorm once over ``T*B``;
    ``'per_step'`` normalises each time step separately in training (BIDL's
    outer loop: BatchNorm statistics per step, see
    :mod:`~bidl_train.layers.time_fold`).
    """

    _in_dims = None  # per-sample dims the synapse expects
    norm_stats = 'all_steps'

    def set_norm_stats(self, norm_stats):
        self.norm_stats = check_norm_stats(type(self).__name__, norm_stats)

    def synapse(self, x):
        raise NotImplementedError(
            f'{type(self).__name__} must implement synapse()')

    def _check_input(self, x, time_axis):
        check_input_dims(type(self).__name__, x, self._in_dims, time_axis)

    def forward(self, x_seq):
        self._check_input(x_seq, True)
        x, steps = fold_time(x_seq, type(self).__name__)
        if self.training and self.norm_stats == 'per_step':
            with per_step_batchnorm(self, steps):
                x = self.synapse(x)
        else:
            x = self.synapse(x)
        return self.neuron(unfold_time(x, steps))

    def init_state(self, x_t):
        return None

    def step(self, x_t, state=None):
        self._check_input(x_t, False)
        return self.neuron.step(self.synapse(x_t), state)


@MODELS.register_module()
class FcLif(_SynapseLif):
    """``Dropout(input) -> Linear -> [BatchNorm1d] -> neuron`` on ``[T, B, N]``.

    Dropout (when ``dropout > 0``) drops input features, before the linear
    map, as usual for fully connected classifier layers.
    """

    _in_dims = 1

    def __init__(self, in_features, out_features, bias=True, norm=False,
                 dropout=0.0, neuron=dict(type='LIF'),
                 norm_stats='all_steps'):
        super().__init__()
        self.set_norm_stats(norm_stats)
        _check_positive_int('FcLif', 'in_features', in_features)
        _check_positive_int('FcLif', 'out_features', out_features)
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f'FcLif: dropout must lie in [0, 1), got '
                              f'{dropout!r}')
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.norm = nn.BatchNorm1d(out_features) if norm else None
        self.neuron = build_neuron(neuron, (out_features, ), 'FcLif')

    def synapse(self, x):
        if x.shape[-1] != self.linear.in_features:
            raise ConfigError(
                f'FcLif: expected {self.linear.in_features} input features, '
                f'got {x.shape[-1]}')
        if self.dropout is not None:
            x = self.dropout(x)
        x = self.linear(x)
        return x if self.norm is None else self.norm(x)


class _ConvLif(_SynapseLif):
    """``Conv -> [MaxPool(pool)] -> [BatchNorm] -> neuron`` (BIDL order)."""

    _conv = _pool = _bn = None

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1,
                 padding=1, bias=True, norm=True, pool=None,
                 neuron=dict(type='LIF'), dilation=1, groups=1,
                 norm_stats='all_steps'):
        super().__init__()
        owner = type(self).__name__
        self.set_norm_stats(norm_stats)
        _check_positive_int(owner, 'in_channels', in_channels)
        _check_positive_int(owner, 'out_channels', out_channels)
        if pool is not None:
            _check_positive_int(owner, 'pool', pool)
        self.conv = self._conv(in_channels, out_channels, kernel_size,
                               stride=stride, padding=padding, bias=bias,
                               dilation=dilation, groups=groups)
        self.pool = self._pool(pool) if pool is not None else None
        self.norm = self._bn(out_channels) if norm else None
        self.neuron = build_neuron(
            neuron, (out_channels, ) + (None, ) * (self._in_dims - 1), owner)

    def synapse(self, x):
        if x.shape[1] != self.conv.in_channels:
            raise ConfigError(
                f'{type(self).__name__}: expected {self.conv.in_channels} '
                f'input channels, got {x.shape[1]}')
        x = self.conv(x)
        if self.pool is not None:
            x = self.pool(x)
        return x if self.norm is None else self.norm(x)


@MODELS.register_module()
class Conv1dLif(_ConvLif):
    """Conv1d spiking layer on ``[T, B, C, L]``."""
    _in_dims = 2
    _conv, _pool, _bn = nn.Conv1d, nn.MaxPool1d, nn.BatchNorm1d


@MODELS.register_module()
class Conv2dLif(_ConvLif):
    """Conv2d spiking layer on ``[T, B, C, H, W]``."""
    _in_dims = 3
    _conv, _pool, _bn = nn.Conv2d, nn.MaxPool2d, nn.BatchNorm2d


@MODELS.register_module()
class Conv3dLif(_ConvLif):
    """Conv3d spiking layer on ``[T, B, C, D, H, W]``."""
    _in_dims = 4
    _conv, _pool, _bn = nn.Conv3d, nn.MaxPool3d, nn.BatchNorm3d


class _NeuronOnly(_SynapseLif):

    def synapse(self, x):
        return x


@MODELS.register_module()
class Lif1d(_NeuronOnly):
    """A neuron population alone on ``[T, B, N]`` (parameters per N)."""

    _in_dims = 1

    def __init__(self, num_features, neuron=dict(type='LIF')):
        super().__init__()
        _check_positive_int('Lif1d', 'num_features', num_features)
        self.neuron = build_neuron(neuron, (num_features, ), 'Lif1d')

    def forward(self, x_seq):
        self._check_input(x_seq, True)
        return self.neuron(x_seq)


@MODELS.register_module()
class Lif2d(_NeuronOnly):
    """A neuron population alone on ``[T, B, C, H, W]`` (per channel C)."""

    _in_dims = 3

    def __init__(self, channels, neuron=dict(type='LIF')):
        super().__init__()
        _check_positive_int('Lif2d', 'channels', channels)
        self.neuron = build_neuron(neuron, (channels, None, None), 'Lif2d')

    def forward(self, x_seq):
        self._check_input(x_seq, True)
        return self.neuron(x_seq)
