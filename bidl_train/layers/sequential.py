"""A chain of spiking layers with both execution forms.

``forward(x_seq)`` chains the multi-step forms; ``step(x_t, state)`` chains
the single-step forms. Its state follows the one state protocol
(:mod:`bidl_train.utils.state`): a dict holding each stateful layer's state
under the layer's index as a string (``{'0': {'v': ...}, '2': {'v': ...}}``,
named ``0.v``, ``2.v``), stateless layers holding none; ``None`` or a
missing entry starts that layer fresh. A layer without a single-step form
(temporal attention) makes ``step`` raise a ConfigError naming it. Plain
torch modules (conv, BN, pooling, flatten, dropout, activations) are
stateless and are wrapped in :class:`TimeFold` automatically; recurrent
torch modules keep hidden state across steps and are refused.
"""
import torch
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.neurons import build_module
from bidl_train.registry import MODELS
from bidl_train.utils.state import check_state_entries
from .time_fold import TimeFold, check_norm_stats, per_step_batchnorm

__all__ = ['SpikingSequential']


def _as_spiking(spec, index):
    module = build_module(spec, f'SpikingSequential[{index}]', 'layer')
    if callable(getattr(module, 'step', None)):
        return module
    if isinstance(module, nn.RNNBase):
        raise ConfigError(
            f'SpikingSequential[{index}]: {type(module).__name__} keeps '
            'hidden state across steps and cannot be time-folded; use a '
            'spiking layer instead')
    return TimeFold(module)


@MODELS.register_module()
class SpikingSequential(nn.Sequential):
    """``SpikingSequential(m1, m2, ...)`` or ``SpikingSequential([cfg, ...])``.

    Items are modules or config dicts (``dict(type='Conv2dLif', ...)``,
    ``dict(type='Flatten')``). From a config:
    ``dict(type='SpikingSequential', layers=[dict(type='FcLif', ...), ...])``.
    ``norm_stats``: ``'all_steps'`` or ``'per_step'`` (see
    :mod:`~bidl_train.layers.time_fold`).
    """

    def __init__(self, *modules, layers=None, norm_stats='all_steps'):
        if layers is not None:
            if modules:
                raise ConfigError('SpikingSequential: give the layers either '
                                  'as arguments or as layers=[...], not both')
            modules = tuple(layers)
        elif len(modules) == 1 and isinstance(modules[0], (list, tuple)):
            modules = tuple(modules[0])
        super().__init__(*[_as_spiking(m, i) for i, m in enumerate(modules)])
        self.norm_stats = check_norm_stats('SpikingSequential', norm_stats)

    def forward(self, x_seq):
        """Multi-step: the layers' folded forms; in training with
        ``norm_stats='per_step'`` every BatchNorm of the chain (outside the
        neurons) normalises one time step at a time (BIDL's outer loop)."""
        if self.training and self.norm_stats == 'per_step' and \
                torch.is_tensor(x_seq) and x_seq.dim() >= 2:
            with per_step_batchnorm(self, x_seq.shape[0]):
                return super().forward(x_seq)
        return super().forward(x_seq)

    def step(self, x_t, state=None):
        """One step through every layer; ``state`` as in the module doc."""
        check_state_entries('SpikingSequential', state,
                            [str(i) for i in range(len(self))],
                            'layer index')
        new_state = {}
        for index, layer in enumerate(self):
            key = str(index)
            try:
                x_t, layer_state = layer.step(
                    x_t, None if state is None else state.get(key))
            except ConfigError as err:
                raise ConfigError(f'SpikingSequential[{index}] '
                                  f'({type(layer).__name__}): {err}') from err
            if layer_state is not None:  # stateless layers hold none
                new_state[key] = layer_state
        return x_t, new_state
