"""A fixed population-vote readout for population-coded output layers.

The output layer has ``num_classes * group_size`` spiking neurons, one group
per class (the layout :class:`~bidl_train.learning.rules.RewardSTDP`
rewards). The logits are the groups' firing rates, scaled::

    logit_{b,c} = scale * mean_{t, o in group c} y_{t,b,o}

The readout has no weights, so whatever the layer learns (globally or
locally) is read out the same way: the group of class c votes for class c.
``scale`` sets the softness of the cross-entropy loss on rates in [0, 1].
"""
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.layers.aggregation import fresh_aggregate, running_aggregate
from bidl_train.registry import MODELS

__all__ = ['PopulationClsHead']


@MODELS.register_module()
class PopulationClsHead(nn.Module):
    """Group firing rates as logits, with a loss (see the module docstring).

    Args:
        num_classes (int), group_size (int): the population layout.
        scale (float): logit per unit of firing rate, ``> 0``.
        loss (dict): loss config, default cross-entropy.
    """

    def __init__(self, num_classes, group_size=1, scale=10.0,
                 loss=dict(type='CrossEntropyLoss')):
        super().__init__()
        for name, value in (('num_classes', num_classes),
                            ('group_size', group_size)):
            if isinstance(value, bool) or not isinstance(value,
                                                         int) or value < 1:
                raise ConfigError(f'PopulationClsHead: {name} must be a '
                                  f'positive int, got {value!r}')
        if not isinstance(scale, (int, float)) or not scale > 0:
            raise ConfigError(f'PopulationClsHead: scale must be > 0, got '
                              f'{scale!r}')
        self.num_classes = num_classes
        self.group_size = group_size
        self.scale = float(scale)
        self.loss_module = MODELS.build(loss)

    def group_rates(self, spikes):
        """``[..., C*G] -> [..., C]``: mean activity of every group."""
        expected = self.num_classes * self.group_size
        if spikes.shape[-1] != expected:
            raise ConfigError(
                f'PopulationClsHead: expected {expected} = num_classes * '
                f'group_size inputs, got {spikes.shape[-1]}')
        return spikes.unflatten(-1, (self.num_classes,
                                     self.group_size)).mean(-1)

    def forward(self, feats):
        """``[T, B, C*G] -> [B, C]`` logits."""
        return self.scale * self.group_rates(feats).mean(0)

    def loss(self, feats, labels):
        return dict(loss=self.loss_module(self.forward(feats), labels))

    def step(self, x_t, state=None):
        """Logits of the steps seen so far (equal to :meth:`forward` after
        all T steps); ``state = {'sum', 'count'}``."""
        _, state = running_aggregate('mean', self.group_rates(x_t), state)
        # scale * sum / count, in this order: the numbers of earlier releases
        return self.scale * state['sum'] / state['count'], state

    def init_state(self, x_t):
        """No steps seen: zero group-rate sum and count."""
        return fresh_aggregate(x_t.new_zeros(x_t.shape[0], self.num_classes))
