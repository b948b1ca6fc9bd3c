"""Backbones without an NIR graph of their own.

``ConvLifNet`` (and its subclasses ``VGGLif``, ``PLIFNet``) is a
``SpikingSequential`` of layers: lowered layer by layer. ``FastTextLif``
and ``Spikformer`` are branching (``StatefulModule``): one
:class:`~..nodes.StatefulNode` running their own ``compute``
(:meth:`~..lower.Lowerer.stateful`); the NIR target refuses them.
"""
from bidl_train.models.backbones import ConvLifNet, FastTextLif
from bidl_train.models.backbones.spikformer import Spikformer
from ..lower import LAYER_LOWERINGS


@LAYER_LOWERINGS.register(ConvLifNet)
def lower_conv_lif_net(lowerer, module, source, state_path):
    lowerer.layer(module.layers, f'{source}.layers', state_path)


@LAYER_LOWERINGS.register(FastTextLif, Spikformer)
def lower_traced(lowerer, module, source, state_path):
    """A ``StatefulModule`` whose ``compute`` is plain tensor ops around
    its neurons (no Python branching on values), so one example run finds
    every neuron. A user's such module registers this same function."""
    lowerer.stateful(module, source, state_path)
