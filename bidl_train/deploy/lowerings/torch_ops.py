"""Stateless torch modules: run once per step, no state.

Conv and linear layers become weighted nodes (a following BatchNorm folds
into them, see :meth:`~..lower.Lowerer.batchnorm`); dropout and
``Identity`` are dropped (identity at inference); pooling, flatten and the
ReLU-type activations are kept as they are.
"""
import copy

from torch import nn

from bidl_train.layers import SpikingSequential
from ..lower import OP_LOWERINGS, LoweringError
from ..nodes import ModuleNode

#: stateless torch modules kept as they are
KEPT = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.MaxPool1d,
        nn.MaxPool2d, nn.MaxPool3d, nn.Flatten, nn.ReLU, nn.LeakyReLU,
        nn.Sigmoid, nn.Tanh, nn.GELU, nn.AdaptiveAvgPool1d,
        nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)


@OP_LOWERINGS.register(nn.Sequential)
def lower_sequential(lowerer, module, source, fold_bn):
    if isinstance(module, SpikingSequential):
        # its layers keep state; a stateless place cannot run them
        raise LoweringError(
            f'layer {source}: a SpikingSequential where a stateless module '
            'is expected (inside a TimeFold or a layer\'s synapse)')
    for i, child in enumerate(module):
        lowerer.stateless(child, f'{source}.{i}', fold_bn)


@OP_LOWERINGS.register(nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
def lower_weighted(lowerer, module, source, fold_bn):
    lowerer.weighted(module, source)


@OP_LOWERINGS.register(nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
def lower_batchnorm(lowerer, module, source, fold_bn):
    lowerer.batchnorm(module, source, fold_bn)


@OP_LOWERINGS.register(nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
                       nn.AlphaDropout, nn.Identity)
def lower_identity(lowerer, module, source, fold_bn):
    lowerer.note(f'{type(module).__name__} {source} dropped (identity at '
                 'inference)')


@OP_LOWERINGS.register(*KEPT)
def lower_kept(lowerer, module, source, fold_bn):
    lowerer.add(ModuleNode(copy.deepcopy(module)), source)
