"""Lower a trained spiking classifier into a flat chain of inference nodes.

The walk knows each building block of bidl-train (``SpikingSequential``,
``TimeFold``, the ``*Lif`` layers, the neurons, ``Aggregation``, the heads
``SpikingClsHead``/``PopulationClsHead``, the ``ConvLifNet`` backbone, the
branching backbones ``ResNetLif``/``SEWResNet``/``FastTextLif``/
``Spikformer`` and the plastic layers) and refuses anything else by name,
so an unknown layer is never exported as something different.

* LIF, IF and PLIF become :class:`~.nodes.LIFNode` (explicit parameters,
  which NIR, int8 and the resource count read); ALIF, CubaLIF, LIFPlus and
  Izhikevich become :class:`~.nodes.NeuronNode`, which runs the neuron's
  own ``step`` with a plain Heaviside spike; every state tensor is explicit.
* Branching backbones become one :class:`~.nodes.StatefulNode` that runs
  the backbone's own ``compute`` with those neuron nodes (found, with their
  state keys, by running it once on an example step).
* A plastic layer with learning off applies a constant local weight
  (persistent: its buffer; fast: zeros), folded into its global weight. One
  that learns at inference becomes a :class:`~.nodes.PlasticNode`: the
  local weight and the rule's traces are explicit state and the local
  update runs in the graph. A rule that needs a teaching signal
  (``RewardSTDP`` with its gate on) makes the node take labels: the
  exported graphs then get a ``teacher`` input (int64 ``[B]``, ``-1``: no
  label, no reward), see :attr:`LoweredNet.teacher_layers`. Other rules
  that need a teacher are refused by name (their use of the labels is not
  known to be plain tensor ops).
* ``PopulationClsHead`` (a fixed group vote) becomes plain nodes: group
  mean, the temporal mean with the head's own ``sum``/``count`` state,
  then the scale.

On the way it

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
from bidl_train.learning.population_head import PopulationClsHead
from bidl_train.learning.rules.stdp import RewardSTDP
from bidl_train.models.backbones import (ConvLifNet, FastTextLif, ResNetLif,
                                         SEWResNet)
from bidl_train.models.backbones.spikformer import Spikformer
from bidl_train.models.backbones.stateful import SingleStepContext
from bidl_train.models.heads import SpikingClsHead
from bidl_train.neurons import (ALIF, IF, LIF, PLIF, BaseNeuron, CubaLIF,
                                Izhikevich, LIFPlus)
from .nodes import (AggregateNode, ChannelAffineNode, GroupMeanNode,
                    LIFNode, ModuleNode, NeuronNode, PlasticNode,
                    StatefulNode, WeightedNode)

__all__ = ['LoweredLayer', 'LoweredNet', 'lower_model']

_CONVS = {nn.Conv1d: 'conv1d', nn.Conv2d: 'conv2d', nn.Conv3d: 'conv3d'}
_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
             nn.AlphaDropout)
_AVGPOOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
#: neuron kinds lowered to :class:`LIFNode` (same equations, other leak)
_NEURONS = (LIF, IF, PLIF)
#: neuron kinds lowered to :class:`NeuronNode` (their own ``step``; every
#: state of theirs is a plain tensor and their step is plain ops apart from
#: the surrogate spike, which the node replaces)
_OTHER_NEURONS = (ALIF, CubaLIF, LIFPlus, Izhikevich)
#: branching backbones lowered by tracing their own ``compute``
_STATEFUL = (ResNetLif, SEWResNet, FastTextLif, Spikformer)
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
    #: the module path the node's spikes are named after, where it is not
    #: ``source`` (a plastic layer's spikes are its neuron's)
    spike_source: str = None

    @property
    def spike_name(self):
        return f'spikes.{self.spike_source or self.source}'


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
    def shared_state_names(self):
        """The states with no batch axis (one value for the whole batch)."""
        return [name for layer in self.layers
                for name, local in zip(layer.state_names,
                                       layer.node.state_names)
                if local in layer.node.shared_states]

    @property
    def teacher_layers(self):
        """The layers whose local rule reads labels at every step (the
        exported graphs get a ``teacher`` input when there is one)."""
        return [layer.source for layer in self.layers
                if layer.node.needs_teacher]

    @property
    def spike_names(self):
        names = []
        for layer in self.layers:
            if isinstance(layer.node, StatefulNode):
                names.extend(layer.node.spike_names)
            elif layer.node.emits_spikes:
                names.append(layer.spike_name)
        return names


def _neuron_node(neuron, source):
    """The node of a neuron module: :class:`LIFNode` for LIF/IF/PLIF,
    :class:`NeuronNode` for the other kinds bidl-train defines."""
    if type(neuron) in _NEURONS:
        return _lif_node(neuron, source)
    if type(neuron) in _OTHER_NEURONS:
        return NeuronNode(neuron)
    raise LoweringError(
        f'layer {source}: neuron kind {type(neuron).__name__} is not '
        'supported for deployment (supported: LIF, IF, PLIF, ALIF, CubaLIF, '
        'LIFPlus, Izhikevich)')


def _folds_batchnorm(neuron):
    """Whether a BatchNorm feeding ``neuron`` may be folded into the
    conv/linear before it. Folding changes the current by float rounding
    (~1e-7 relative); the LIF family, ALIF and CubaLIF contract such a
    difference step by step, while LIFPlus (quadratic/exponential spike
    initiation, reversal voltages) and Izhikevich (``0.04 v^2``) can grow
    it several-fold per step, so there the BatchNorm stays the model's own
    eval-mode op and the export is exact."""
    return type(neuron) not in (LIFPlus, Izhikevich)


def _lif_node(neuron, source):
    """The plain-op :class:`LIFNode` of a LIF/IF/PLIF neuron module."""
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

    def _add(self, node, source, state_path=None, spike_source=None):
        names = [f'{state_path}.{n}' for n in node.state_names]
        self.layers.append(LoweredLayer(node, source, names, spike_source))
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

    def _batchnorm(self, bn, source, fold=True):
        if not bn.track_running_stats or bn.running_mean is None:
            raise LoweringError(
                f'layer {source}: BatchNorm without running statistics '
                'cannot be deployed (track_running_stats=False)')
        if not fold:
            self._add(ModuleNode(copy.deepcopy(bn).eval()), source)
            self.folded.append(
                f'BatchNorm {source} kept as an eval-mode BatchNorm op, not '
                'folded: the neuron after it amplifies rounding differences '
                'along the steps (nonlinear membrane dynamics)')
            return
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

    def stateless(self, module, source, fold_bn=True):
        """``fold_bn``: fold a BatchNorm into the conv/linear before it
        (where exact up to rounding) or keep it as the model's own op."""
        if isinstance(module, nn.Sequential) and not isinstance(
                module, SpikingSequential):
            for i, child in enumerate(module):
                self.stateless(child, f'{source}.{i}', fold_bn)
        elif isinstance(module, (nn.Linear, ) + tuple(_CONVS)):
            self._weighted(module, source)
        elif isinstance(module, _BATCHNORMS):
            self._batchnorm(module, source, fold_bn)
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
        self._add(_neuron_node(neuron, source), source, state_path)

    def stateful(self, module, source, state_path):
        """A branching backbone: one :class:`StatefulNode` running its own
        ``compute``, each neuron lowered to its neuron node."""
        if self.example is None:
            raise LoweringError(
                f'layer {source}: lowering {type(module).__name__} needs an '
                'example input step (lower_model(model, example))')
        # recorded on an eval-mode copy: a model still in training mode
        # would update its BatchNorm running statistics (and need a batch
        # of several samples) on the example run
        copy_ = copy.deepcopy(module).eval()
        names = {id(m): name for name, m in copy_.named_modules(
            prefix=source)}
        ctx = _RecordingContext()
        copy_.compute(self._input_of_next(), ctx)
        neurons = [_neuron_node(n, names[id(n)]) for _, n in ctx.fired]
        keys = [key for key, _ in ctx.fired]
        paths = [names[id(n)] for _, n in ctx.fired]
        self._add(StatefulNode(copy_, keys, neurons, paths), source,
                  state_path)
        self.folded.append(
            f'{source} ({type(module).__name__}): its own compute() traced '
            f'with {len(keys)} neurons lowered to plain-op neuron nodes; '
            'BatchNorms inside it stay eval-mode BatchNorm ops (not folded)')

    def plastic(self, module, source, state_path):
        """A plastic layer: folded when its local weight is constant at
        inference, else a :class:`PlasticNode` with the local weight and
        the rule's traces as explicit state.

        Learning off at inference (a persistent layer in eval mode with
        ``learning`` None, or ``learning=False``): the layer applies
        ``I = (W_g + L) x + b`` with ``L`` constant (the buffer, or zeros
        for a fast layer), an ordinary conv/linear with weight ``W_g + L``:
        folded, exactly. Learning on (``plasticity='fast'``, or
        ``learning=True``): the local update runs in the graph.
        """
        name = type(module).__name__
        # eval-mode semantics of learning_active(): the deployed network
        # infers, so a persistent layer with learning=None does not learn
        learning = (module.plasticity == 'fast' if module.learning is None
                    else bool(module.learning))
        if learning:
            self._learning_plastic(module, source, state_path)
            return
        synapse = getattr(module, 'linear', None) or module.conv
        merged = copy.deepcopy(synapse)
        merged.weight.data = synapse.weight.detach().clone()
        if module.plasticity == 'persistent':
            merged.weight.data += module.local_weight.detach().reshape(
                synapse.weight.shape)
        part = 'linear' if isinstance(merged, nn.Linear) else 'conv'
        self._weighted(merged, f'{source}.{part}')
        self.folded.append(
            f'{name} {source}: learning off at inference, constant local '
            'weight folded into the global weight (W_g + L'
            + (')' if module.plasticity == 'persistent' else ', L = 0)'))
        for part in ('pool', 'norm'):
            sub = getattr(module, part, None)
            if sub is not None:
                self.stateless(sub, f'{source}.{part}',
                               _folds_batchnorm(module.neuron))
        self.neuron(module.neuron, f'{source}.neuron', f'{state_path}.neuron')
        self.folded_states.append(f'{state_path}.local')

    def _learning_plastic(self, module, source, state_path):
        name = type(module).__name__
        rule = module.rule
        if rule.needs_teacher and not isinstance(rule, RewardSTDP):
            # RewardSTDP's reward is plain tensor ops on the labels (a
            # one-hot by comparison, -1 matching no class); another rule
            # may branch on them in Python, which a trace would freeze
            raise LoweringError(
                f'layer {source}: {name} learns at inference with rule '
                f'{type(rule).__name__}, which needs a teaching signal; '
                'bidl-deploy gives the exported graph a teacher input for '
                'RewardSTDP only. Deploy with learning=False (the learned '
                'local weight is folded) or use RewardSTDP')
        # the neuron kind must be deployable (refused by name otherwise)
        _neuron_node(module.neuron, f'{source}.neuron')
        out_features, in_features = module.local_shape
        persistent = module.plasticity == 'persistent'
        # the rule's state keys, from its own init_state (the shapes do not
        # matter here: one sample, one position)
        keys = list(rule.init_state(torch.zeros(1, 1, in_features),
                                    torch.zeros(1, 1, out_features),
                                    persistent))
        node = PlasticNode(module, keys)
        self._add(node, source, state_path, spike_source=f'{source}.neuron')
        self.folded.append(
            f'{name} {source}: learns at inference ({type(rule).__name__}, '
            f'plasticity={module.plasticity!r}); local weight and rule '
            'state exported as state, the local update runs in the graph'
            + ('; local weight shared by the batch (no batch axis)'
               if persistent else '')
            + ('; reward from the graph input teacher (labels [B], -1: no '
               'reward)' if node.needs_teacher else ''))

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
                    self.stateless(sub, f'{source}.{part}',
                                   _folds_batchnorm(module.neuron))
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
                'TimeFold, FcLif, Conv1d/2d/3dLif, Lif1d/2d, the neurons, '
                'Aggregation, ConvLifNet, ResNetLif, SEWResNet, FastTextLif, '
                'Spikformer, PlasticFcLif/PlasticConv2dLif')

    def head(self, head, source):
        if isinstance(head, PopulationClsHead):
            self.population_head(head, source)
            return
        if not isinstance(head, SpikingClsHead):
            raise LoweringError(
                f'layer {source}: head {type(head).__name__} is not '
                'supported for deployment (SpikingClsHead, '
                'PopulationClsHead)')
        self.stateless(head.dropout, f'{source}.dropout')
        self._add(ModuleNode(nn.Flatten(1)), f'{source}.flatten')
        self._weighted(head.fc, f'{source}.fc')
        self._add(AggregateNode(head.aggregation), f'{source}.aggregate',
                  source)

    def population_head(self, head, source):
        """``scale * mean_t mean_group y``: the group mean, the temporal
        mean (whose running ``sum`` of group rates and ``count`` are the
        head's own ``step`` state), then the scale as a channel affine. No
        weights: a vote, not a synapse."""
        classes, group = head.num_classes, head.group_size
        self._add(GroupMeanNode(classes, group), f'{source}.vote')
        self._add(AggregateNode('mean'), f'{source}.aggregate', source)
        self._add(ChannelAffineNode(torch.full((classes, ), head.scale),
                                    torch.zeros(classes), 2),
                  f'{source}.scale')
        self.folded.append(
            f'PopulationClsHead {source}: group vote as group mean, temporal'
            f' mean and scale ({head.scale:g}); {classes} groups of {group}')


def lower_model(model, example=None):
    """Lower a ``SpikingClassifier`` (in eval mode) into a :class:`LoweredNet`.

    Args:
        example (Tensor): one input step ``[1, ...]``; needed for branching
            backbones (ResNetLif, SEWResNet, FastTextLif, Spikformer), whose
            neurons and their state keys are found by running ``compute``
            once.

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
