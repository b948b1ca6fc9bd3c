"""Classification heads.

* ``SpikingClsHead``: dropout (dropped), flatten, the linear readout, then
  the temporal aggregation with the head's own ``sum``/``count`` state.
* ``PopulationClsHead`` (a fixed group vote, no weights): ``scale *
  mean_t mean_group y`` as the group mean, the temporal mean (whose running
  ``sum`` of group rates and ``count`` are the head's own ``step`` state),
  then the scale as a channel affine.
"""
import torch
from torch import nn

from bidl_train.models.heads.population_head import PopulationClsHead
from bidl_train.models.heads import SpikingClsHead
from ..lower import LAYER_LOWERINGS
from ..nodes import AggregateNode, ChannelAffineNode, GroupMeanNode, ModuleNode


@LAYER_LOWERINGS.register(SpikingClsHead)
def lower_cls_head(lowerer, head, source, state_path):
    lowerer.stateless(head.dropout, f'{source}.dropout')
    lowerer.add(ModuleNode(nn.Flatten(1)), f'{source}.flatten')
    lowerer.weighted(head.fc, f'{source}.fc')
    lowerer.add(AggregateNode(head.aggregation), f'{source}.aggregate',
                state_path)


@LAYER_LOWERINGS.register(PopulationClsHead)
def lower_population_head(lowerer, head, source, state_path):
    classes, group = head.num_classes, head.group_size
    lowerer.add(GroupMeanNode(classes, group), f'{source}.vote')
    lowerer.add(AggregateNode('mean'), f'{source}.aggregate', state_path)
    lowerer.add(ChannelAffineNode(torch.full((classes, ), head.scale),
                                  torch.zeros(classes), 2), f'{source}.scale')
    lowerer.note(
        f'PopulationClsHead {source}: group vote as group mean, temporal '
        f'mean and scale ({head.scale:g}); {classes} groups of {group}')
