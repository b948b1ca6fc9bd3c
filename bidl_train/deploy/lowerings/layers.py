"""The spiking building blocks of :mod:`bidl_train.layers`.

``SpikingSequential`` lowers its layers in order (state ``<path>.<i>``);
``TimeFold`` its stateless module; ``FcLif``/``Conv1d/2d/3dLif`` their
synapse parts (dropout, linear or conv, pooling, BatchNorm) then their
neuron; ``Lif1d``/``Lif2d`` their neuron; ``Aggregation`` becomes an
:class:`~..nodes.AggregateNode` with its running sum and count as state.
"""
from bidl_train.layers import (Aggregation, Conv1dLif, Conv2dLif, Conv3dLif,
                               FcLif, Lif1d, Lif2d, SpikingSequential,
                               TimeFold)
from ..lower import LAYER_LOWERINGS
from ..nodes import AggregateNode


@LAYER_LOWERINGS.register(SpikingSequential)
def lower_spiking_sequential(lowerer, module, source, state_path):
    for i, child in enumerate(module):
        lowerer.layer(child, f'{source}.{i}', f'{state_path}.{i}')


@LAYER_LOWERINGS.register(TimeFold)
def lower_time_fold(lowerer, module, source, state_path):
    lowerer.stateless(module.module, f'{source}.module')


def lower_synapse_parts(lowerer, module, source, parts):
    """The stateless ``parts`` of a synapse-then-neuron layer that it has,
    in order; a BatchNorm among them folds where its neuron allows."""
    fold = lowerer.folds_batchnorm(module.neuron)
    for part in parts:
        sub = getattr(module, part, None)
        if sub is not None:
            lowerer.stateless(sub, f'{source}.{part}', fold)


@LAYER_LOWERINGS.register(FcLif, Conv1dLif, Conv2dLif, Conv3dLif)
def lower_synapse_lif(lowerer, module, source, state_path):
    lower_synapse_parts(lowerer, module, source,
                        ('dropout', 'linear', 'conv', 'pool', 'norm'))
    lowerer.neuron(module.neuron, f'{source}.neuron', state_path)


@LAYER_LOWERINGS.register(Lif1d, Lif2d)
def lower_neuron_only(lowerer, module, source, state_path):
    lowerer.neuron(module.neuron, f'{source}.neuron', state_path)


@LAYER_LOWERINGS.register(Aggregation)
def lower_aggregation(lowerer, module, source, state_path):
    lowerer.add(AggregateNode(module.mode), source, state_path)
