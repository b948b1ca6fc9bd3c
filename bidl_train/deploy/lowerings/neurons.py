"""Neuron kinds, each to its node, and a bare neuron as a layer.

* LIF, IF and PLIF become :class:`~..nodes.LIFNode` (explicit parameters,
  which NIR, int8 and the resource count read): the LIF equations with the
  leak factor the neuron itself uses (IF: 1, PLIF: ``sigmoid(w)``).
* ALIF, CubaLIF, LIFPlus and Izhikevich become :class:`~..nodes.NeuronNode`,
  which runs the neuron's own ``step`` with a plain Heaviside spike: every
  state of theirs is a plain tensor and their step is plain ops apart from
  the surrogate spike, which the node replaces.

Entries are exact (a subclass of a kind is refused until it registers its
own lowering: it may change the equations). ``fold_batchnorm=False``: a
BatchNorm feeding the neuron stays the model's own eval-mode op. Folding
changes the current by float rounding (~1e-7 relative); the LIF family,
ALIF and CubaLIF contract such a difference step by step, while LIFPlus
(quadratic/exponential spike initiation, reversal voltages) and Izhikevich
(``0.04 v^2``) can grow it several-fold per step.
"""
import copy

from bidl_train.neurons import (ALIF, IF, LIF, PLIF, BaseNeuron, CubaLIF,
                                Izhikevich, LIFPlus)
from ..lower import LAYER_LOWERINGS, NEURON_LOWERINGS, batchnorm_affine
from ..nodes import ChannelAffineNode, LIFNode, NeuronNode


@NEURON_LOWERINGS.register(LIF, IF, PLIF)
def lif_node(neuron, source):
    """The plain-op :class:`LIFNode` of a LIF/IF/PLIF neuron module."""
    norm = None
    if neuron.norm is not None:
        scale, shift = batchnorm_affine(neuron.norm)
        ndim = len(neuron.feature_shape) + 1
        norm = ChannelAffineNode(scale, shift, max(ndim, 2))
    act = copy.deepcopy(neuron.act) if neuron.mode == 'analog' else None
    node = LIFNode(neuron.leak_factor(), neuron.beta, neuron.theta,
                   neuron.v0, neuron.reset, neuron.mode, neuron.memb_mode,
                   act, norm)
    node.feature_shape = neuron.feature_shape
    node.param_shape = neuron.param_shape
    return node


@NEURON_LOWERINGS.register(ALIF, CubaLIF)
def own_step_node(neuron, source):
    return NeuronNode(neuron)


NEURON_LOWERINGS.register(LIFPlus, Izhikevich,
                          fold_batchnorm=False)(own_step_node)


@LAYER_LOWERINGS.register(BaseNeuron)
def lower_neuron_layer(lowerer, module, source, state_path):
    """A neuron directly in a ``SpikingSequential``."""
    lowerer.neuron(module, source, state_path)
