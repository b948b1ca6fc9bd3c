"""Lower a trained spiking classifier into a flat chain of inference nodes.

The walk knows each building block of bidl-train (``SpikingSequential``,
``TimeFold``, the ``*Lif`` layers, the ``LIF``/``IF``/``PLIF`` neurons,
``Aggregation``, ``SpikingClsHead``, the ``ConvLifNet`` backbone, the
branching backbones ``ResNetLif``/``SEWResNet``/``FastTextLif`` and
persistent plastic layers) and refuses anything else by name, so an unknown
layer is never exported as something different. Branching backbones become
one :class:`~.nodes.StatefulNode` that runs the backbone's own ``compute``
with plain-op neurons (found, with their state keys, by running it once on
an example step). A persistent plastic layer with learning off applies a
constant local weight, folded into its global weight. On the way it

* drops dropout (identity at inference);
* folds a BatchNorm into the conv/linear before it, also across a pooling
  layer when that is exact (average pooling always; max pooling when every
  BatchNorm scale is positive, since ``max(a x + b) = a max(x) + b`` for
  ``a > 0``); otherwise keeps it as a per-channel affine node;
* records, per stateful node, the names its state has in the model's own
  ``step`` state tree (``backbone.0.v``, ``head.sum``), so the exported
  graph's inputs and outputs match ``model.step``'s state one to one.
"""
import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.layers import (Aggregation, Conv1dLif, Conv2dLif, Conv3dLif,
                               FcLif, Lif1d, Lif2d, SpikingSequential,
                               TimeFold)
from bidl_train.learning.plastic import PlasticConv2dLif, PlasticFcLif
from bidl_train.models.backbones import (ConvLifNet, FastTextLif, ResNetLif,
                                         SEWResNet)
from bidl_train.models.backbones.stateful import SingleStepContext
from bidl_train.models.heads import SpikingClsHead
from bidl_train.neurons import IF, LIF, PLIF, BaseNeuron
from .nodes import (AggregateNode, ChannelAffineNode, LIFNode, ModuleNode,
                    StatefulNode, WeightedNode)

__all__ = ['LoweredLayer', 'LoweredNet', 'lower_model']

_CONVS = {nn.Conv1d: 'conv1d', nn.Conv2d: 'conv2d', nn.Conv3d: 'conv3d'}
_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
             nn.AlphaDropout)
_AVGPOOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
#: neuron kinds lowered to :class:`LIFNode` (same equations, other leak)
_NEURONS = (LIF, IF, PLIF)
#: branching backbones lowered by tracing their own ``compute``
_STATEFUL = (ResNetLif, SEWResNet, FastTextLif)
_MAXPOOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
#: stateless torch modules kept as they are
_KEPT = _AVGPOOLS + _MAXPOOLS + (
    nn.Flatten, nn.ReLU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.GELU,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)


class LoweringError(ConfigError):
    """The model holds a layer or option the deployment cannot express."""


@dataclass
class LoweredLayer:
    """One node plus where it came from.

    ``source``: the qualified module name in the model; ``state_names``: the
    node's state tensors named by their path in ``model.step``'s state tree.
    """
    node: nn.Module
    source: str
    state_names: list = field(default_factory=list)

    @property
    def spike_name(self):
        return f'spikes.{self.source}'


@dataclass
class LoweredNet:
    layers: list
    folded: list  # human-readable notes of what was folded or dropped
    #: ``model.step`` state names with no exported counterpart because the
    #: lowering folded them (a persistent plastic layer's local weight)
    folded_states: list = field(default_factory=list)

    @property
    def state_names(self):
        return [n for layer in self.layers for n in layer.state_names]

    @property
    def spike_names(self):
        names = []
        for layer in self.layers:
            if isinstance(layer.node, LIFNode):
                names.append(layer.spike_name)
            elif isinstance(layer.node, StatefulNode):
                names.extend(layer.node.spike_names)
        return names


def _lif_node(neuron, source):
    """The plain-op :class:`LIFNode` of a LIF/IF/PLIF neuron module."""
    if type(neuron) not in _NEURONS:
        raise LoweringError(
            f'layer {source}: neuron kind {type(neuron).__name__} is not '
            'supported for deployment (LIF, IF and PLIF: the kinds whose '
            "inference equations are exactly BIDL LIF's)")
    norm = None
    if neuron.norm is not None:
        bn = neuron.norm
        scale = (bn.running_var + bn.eps).rsqrt()
        shift = -bn.running_mean * scale
        if bn.affine:
            scale, shift = scale * bn.weight, shift * bn.weight + bn.bias
        ndim = len(neuron.feature_shape) + 1
        norm = ChannelAffineNode(scale, shift, max(ndim, 2))
    act = copy.deepcopy(neuron.act) if neuron.mode == 'analog' else None
    # IF fixes alpha = 1, PLIF computes alpha = sigmoid(w): both are the
    # LIF equations with the leak factor the neuron itself would use
    node = LIFNode(neuron.leak_factor(), neuron.beta, neuron.theta,
                   neuron.v0, neuron.reset, neuron.mode, neuron.memb_mode,
                   act, norm)
    node.feature_shape = neuron.feature_shape
    node.param_shape = neuron.param_shape
    return node


class _RecordingContext(SingleStepContext):
    """Runs ``compute`` once with the real neurons and records, in firing
    order, each neuron's full context key and module."""

    def __init__(self, prefix='', fired=None):
        super().__init__(None, prefix)
        self.fired = [] if fired is None else fired

    def scope(self, name):
        return _RecordingContext(f'{self.prefix}{name}.', self.fired)

    def fire(self, neuron, key, x):
        self.fired.append((self.prefix + key, neuron))
        return neuron.step(x)[0]


class _Lowering:

    def __init__(self, example=None):
        self.example = example
        self.layers = []
        self.folded = []
        #: state names of ``model.step`` that the export folds away
        self.folded_states = []
        # index of the last weighted layer a following BatchNorm may fold
        # into, and whether everything after it commutes with a channel
        # affine map (None: no such layer)
        self._fold_target = None
        self._between = []

    # -- helpers ---------------------------------------------------------
    def _input_of_next(self):
        """What the next layer receives for the example step: the example
        run through the nodes lowered so far, from a fresh state."""
        x = self.example
        for layer in self.layers:
            x, _, _ = layer.node.step(x, layer.node.init_state(x))
        return x

    def _add(self, node, source, state_path=None):
        names = [f'{state_path}.{n}' for n in node.state_names]
        self.layers.append(LoweredLayer(node, source, names))
        if isinstance(node, WeightedNode):
            self._fold_target, self._between = len(self.layers) - 1, []
        elif isinstance(node, ModuleNode) and isinstance(
                node.module, _AVGPOOLS + _MAXPOOLS):
            self._between.append(node.module)
        else:
            self._fold_target, self._between = None, []

    def _weighted(self, module, source):
        if isinstance(module, nn.Linear):
            node = WeightedNode('linear', module.weight, module.bias)
        else:
            node = WeightedNode(_CONVS[type(module)], module.weight,
                                module.bias, module.stride, module.padding,
                                module.dilation, module.groups)
            if module.padding_mode != 'zeros':
                raise LoweringError(
                    f'layer {source}: padding_mode={module.padding_mode!r} '
                    'is not supported for deployment (zeros only)')
        self._add(node, source)

    def _batchnorm(self, bn, source):
        if not bn.track_running_stats or bn.running_mean is None:
            raise LoweringError(
                f'layer {source}: BatchNorm without running statistics '
                'cannot be deployed (track_running_stats=False)')
        scale = (bn.running_var + bn.eps).rsqrt()
        shift = -bn.running_mean * scale
        if bn.affine:
            scale, shift = scale * bn.weight, shift * bn.weight + bn.bias
        scale, shift = scale.detach(), shift.detach()
        exact = self._fold_target is not None and all(
            isinstance(m, _AVGPOOLS) or bool((scale > 0).all())
            for m in self._between)
        if exact:
            target = self.layers[self._fold_target]
            node = target.node
            shape = (-1, ) + (1, ) * (node.weight.dim() - 1)
            node.weight = node.weight * scale.reshape(shape)
            node.bias = node.bias * scale + shift
            via = ' across pooling' if self._between else ''
            self.folded.append(
                f'BatchNorm {source} folded into {target.source}{via}')
            return
        ndim = {nn.BatchNorm1d: 2, nn.BatchNorm2d: 4,
                nn.BatchNorm3d: 5}[type(bn)]
        self._add(ChannelAffineNode(scale, shift, ndim), source)
        self.folded.append(f'BatchNorm {source} kept as a channel affine '
                           '(no conv/linear directly before it)')

    def stateless(self, module, source):
        if isinstance(module, nn.Sequential) and not isinstance(
                module, SpikingSequential):
            for i, child in enumerate(module):
                self.stateless(child, f'{source}.{i}')
        elif isinstance(module, (nn.Linear, ) + tuple(_CONVS)):
            self._weighted(module, source)
        elif isinstance(module, _BATCHNORMS):
            self._batchnorm(module, source)
        elif isinstance(module, _DROPOUTS + (nn.Identity, )):
            self.folded.append(f'{type(module).__name__} {source} dropped '
                               '(identity at inference)')
        elif isinstance(module, _KEPT):
            self._add(ModuleNode(copy.deepcopy(module)), source)
        else:
            raise LoweringError(
                f'layer {source}: {type(module).__name__} is not a layer '
                'bidl-deploy can export (supported: conv, linear, '
                'BatchNorm, pooling, flatten, dropout, ReLU-type '
                'activations and the bidl-train spiking layers)')

    def neuron(self, neuron, source, state_path):
        self._add(_lif_node(neuron, source), source, state_path)

    def stateful(self, module, source, state_path):
        """A branching backbone: one :class:`StatefulNode` running its own
        ``compute``, each neuron lowered to a :class:`LIFNode`."""
        if self.example is None:
            raise LoweringError(
                f'layer {source}: lowering {type(module).__name__} needs an '
                'example input step (lower_model(model, example))')
        names = {id(m): name for name, m in module.named_modules(
            prefix=source)}
        ctx = _RecordingContext()
        module.compute(self._input_of_next(), ctx)
        neurons = [_lif_node(n, names[id(n)]) for _, n in ctx.fired]
        keys = [key for key, _ in ctx.fired]
        spike_names = [f'spikes.{names[id(n)]}' for _, n in ctx.fired]
        copy_ = copy.deepcopy(module).eval()
        self._add(StatefulNode(copy_, keys, neurons, spike_names), source,
                  state_path)
        self.folded.append(
            f'{source} ({type(module).__name__}): its own compute() traced '
            f'with {len(keys)} neurons lowered to plain-op LIF; BatchNorms '
            'inside it stay eval-mode BatchNorm ops (not folded)')

    def plastic(self, module, source, state_path):
        """A plastic layer whose local weight is fixed at inference.

        A persistent layer in eval mode (``learning`` None or False) applies
        ``I = (W_g + L) x + b`` with the buffer ``L`` constant, so it is an
        ordinary conv/linear with weight ``W_g + L``: folded, exactly.
        Local learning during inference (``plasticity='fast'``, or
        ``learning=True``) updates ``L`` every step by the rule and is
        refused by name.
        """
        name = type(module).__name__
        if module.plasticity != 'persistent' or module.learning:
            raise LoweringError(
                f'layer {source}: {name} with local learning at inference '
                f'(plasticity={module.plasticity!r}, '
                f'learning={module.learning!r}): the per-step local weight '
                'update is not exported; deploy a persistent layer with '
                'learning off (its local weight is then folded)')
        synapse = getattr(module, 'linear', None) or module.conv
        merged = copy.deepcopy(synapse)
        merged.weight.data = synapse.weight.detach() + \
            module.local_weight.detach().reshape(synapse.weight.shape)
        part = 'linear' if isinstance(merged, nn.Linear) else 'conv'
        self._weighted(merged, f'{source}.{part}')
        self.folded.append(f'{name} {source}: persistent local weight '
                           'folded into the global weight (W_g + L)')
        for part in ('pool', 'norm'):
            sub = getattr(module, part, None)
            if sub is not None:
                self.stateless(sub, f'{source}.{part}')
        self.neuron(module.neuron, f'{source}.neuron', f'{state_path}.neuron')
        self.folded_states.append(f'{state_path}.local')

    def layer(self, module, source, state_path):
        """A module of a SpikingSequential (or the backbone itself)."""
        if isinstance(module, SpikingSequential):
            for i, child in enumerate(module):
                self.layer(child, f'{source}.{i}', f'{state_path}.{i}')
        elif isinstance(module, ConvLifNet):
            self.layer(module.layers, f'{source}.layers', state_path)
        elif isinstance(module, _STATEFUL):
            self.stateful(module, source, state_path)
        elif isinstance(module, (PlasticFcLif, PlasticConv2dLif)):
            self.plastic(module, source, state_path)
        elif isinstance(module, TimeFold):
            self.stateless(module.module, f'{source}.module')
        elif isinstance(module, (FcLif, Conv1dLif, Conv2dLif, Conv3dLif)):
            for part in ('dropout', 'linear', 'conv', 'pool', 'norm'):
                sub = getattr(module, part, None)
                if sub is not None:
                    self.stateless(sub, f'{source}.{part}')
            self.neuron(module.neuron, f'{source}.neuron', state_path)
        elif isinstance(module, (Lif1d, Lif2d)):
            self.neuron(module.neuron, f'{source}.neuron', state_path)
        elif isinstance(module, BaseNeuron):
            self.neuron(module, source, state_path)
        elif isinstance(module, Aggregation):
            self._add(AggregateNode(module.mode), source, state_path)
        else:
            raise LoweringError(
                f'layer {source}: {type(module).__name__} is not a layer '
                'bidl-deploy can export (it may keep recurrent state the '
                'exporter cannot see); supported: SpikingSequential, '
                'TimeFold, FcLif, Conv1d/2d/3dLif, Lif1d/2d, LIF/IF/PLIF, '
                'Aggregation, ConvLifNet, ResNetLif, SEWResNet, FastTextLif, '
                'persistent PlasticFcLif/PlasticConv2dLif')

    def head(self, head, source):
        if not isinstance(head, SpikingClsHead):
            raise LoweringError(
                f'layer {source}: head {type(head).__name__} is not '
                'supported for deployment (SpikingClsHead only)')
        self.stateless(head.dropout, f'{source}.dropout')
        self._add(ModuleNode(nn.Flatten(1)), f'{source}.flatten')
        self._weighted(head.fc, f'{source}.fc')
        self._add(AggregateNode(head.aggregation), f'{source}.aggregate',
                  source)


def lower_model(model, example=None):
    """Lower a ``SpikingClassifier`` (in eval mode) into a :class:`LoweredNet`.

    Args:
        example (Tensor): one input step ``[1, ...]``; needed for branching
            backbones (ResNetLif, SEWResNet, FastTextLif), whose neurons and
            their state keys are found by running ``compute`` once.

    Raises:
        LoweringError: a layer, neuron kind or option cannot be exported.
    """
    for attr in ('backbone', 'head'):
        if not isinstance(getattr(model, attr, None), nn.Module):
            raise LoweringError(
                f'{type(model).__name__} has no {attr}; bidl-deploy exports '
                'SpikingClassifier models (backbone + head)')
    lowering = _Lowering(example)
    with torch.no_grad():
        lowering.layer(model.backbone, 'backbone', 'backbone')
        lowering.head(model.head, 'head')
    return LoweredNet(lowering.layers, lowering.folded,
                      lowering.folded_states)
