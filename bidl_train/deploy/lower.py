"""Lower a trained spiking classifier into a flat chain of inference nodes.

How a module lowers is looked up by its class in a registry of lowerings
(:class:`Lowerings`), not in a list of known classes here:

* :data:`LAYER_LOWERINGS`: the spiking layers, backbones and heads
  (modules with state, run step by step);
* :data:`OP_LOWERINGS`: the stateless torch modules inside them (conv,
  linear, BatchNorm, pooling, dropout, activations);
* :data:`NEURON_LOWERINGS`: the neuron kinds, each to its node.

bidl-train's own lowerings live with their family in
:mod:`bidl_train.deploy.lowerings` (one module per family), and a layer
from any other package registers its own the same way, in its own code::

    from bidl_train.deploy import LAYER_LOWERINGS

    @LAYER_LOWERINGS.register(MyLayer)
    def lower_my_layer(lowerer, module, source, state_path):
        lowerer.stateless(module.fc, f'{source}.fc')
        lowerer.neuron(module.neuron, f'{source}.neuron', state_path)

A module whose class has no lowering is refused, naming its path and type
and how to register one, so an unknown layer is never exported as
something different.

:class:`Lowerer` holds what the lowerings share: the nodes so far, the
BatchNorm folding (into the conv/linear before it, also across a pooling
layer when that is exact: average pooling always, max pooling when every
BatchNorm scale is positive, since ``max(a x + b) = a max(x) + b`` for ``a
> 0``; otherwise a per-channel affine node), the tracing of a branching
backbone's own ``compute`` into one :class:`~.nodes.StatefulNode`, and,
per stateful node, the names its state has in the model's own ``step``
state tree (``backbone.0.v``, ``head.sum``), so the exported graph's inputs
and outputs match ``model.step``'s state one to one.
"""
import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.models.backbones.stateful import SingleStepContext
from .blockers import refusals
from .nodes import (ChannelAffineNode, ModuleNode, StatefulNode,
                    WeightedNode)

__all__ = [
    'LoweredLayer', 'LoweredNet', 'LoweringError', 'Lowerings', 'Lowerer',
    'LAYER_LOWERINGS', 'OP_LOWERINGS', 'NEURON_LOWERINGS', 'batchnorm_affine',
    'lower_model'
]

_CONVS = {nn.Conv1d: 'conv1d', nn.Conv2d: 'conv2d', nn.Conv3d: 'conv3d'}
_AVGPOOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
_MAXPOOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)


class LoweringError(ConfigError):
    """The model holds a layer or option the deployment cannot express."""


# -- the registry ----------------------------------------------------------
@dataclass
class _Entry:
    lowering: object  # what was registered: a function, or a class
    exact: bool
    options: dict


class Lowerings:
    """Lowerings keyed by module class, looked up along the class's MRO.

    As with ``functools.singledispatch``, a subclass of a registered class
    lowers as its parent (``VGGLif`` as ``ConvLifNet``) unless it registers
    its own. An entry registered with ``exact=True`` covers that very class
    only: a subclass of a neuron kind may change its equations, so it is
    refused until it declares its own lowering. The lookup stops at the
    first registered class of the MRO, so an exact entry is never skipped
    for a more general one.

    Args:
        name (str): the registry's importable name (for messages).
        noun (str): what its classes are, before the class name in a
            refusal (``'neuron kind '``; ``''`` for layers).
        signature (str): the signature a lowering has (for messages).
        exact (bool): the default of :meth:`register`'s ``exact``.
    """

    def __init__(self, name, noun, signature, exact=False):
        self.name, self.noun, self.signature = name, noun, signature
        self.exact = exact
        self._entries = {}

    def register(self, *classes, exact=None, **options):
        """Decorator: ``@registry.register(Cls, ...)`` on a lowering.

        ``options`` are kept with the entry for the code that reads them
        (:meth:`options`). Registering a class again replaces its entry.
        """
        if not classes or not all(isinstance(c, type) for c in classes):
            raise TypeError(f'{self.name}.register takes classes, got '
                            f'{classes!r}')
        exact = self.exact if exact is None else exact

        def decorate(lowering):
            for cls in classes:
                self._entries[cls] = _Entry(lowering, exact, options)
            return lowering

        return decorate

    def _entry(self, module):
        cls = type(module)
        for base in cls.__mro__:
            entry = self._entries.get(base)
            if entry is not None:
                return None if entry.exact and base is not cls else entry
        return None

    def get(self, module):
        """The lowering registered for ``module``'s class, or None."""
        entry = self._entry(module)
        return None if entry is None else entry.lowering

    def options(self, module):
        """The options registered with ``module``'s lowering ({} if none)."""
        entry = self._entry(module)
        return {} if entry is None else entry.options

    def names(self):
        return sorted({cls.__name__ for cls in self._entries})

    def missing(self, module):
        """Why ``module`` has no lowering and how to give it one (one
        line, for a refusal)."""
        cls = type(module)
        parent = next((b for b in cls.__mro__[1:] if b in self._entries),
                      None)
        why = ''
        if parent is not None:  # only an exact entry stops at a parent
            why = (f' (its parent {parent.__name__} lowers as that class '
                   'only: a subclass may change the equations)')
        return (f'{self.noun}{cls.__name__} ({cls.__module__}.'
                f'{cls.__qualname__}) has no lowering in {self.name}{why}; '
                f'registered: {", ".join(self.names())}. To export it, '
                f'register one: @{self.name}.register({cls.__name__}) on '
                f'{self.signature} (see bidl_train.deploy.lowerings)')


#: spiking layers, backbones and heads: ``fn(lowerer, module, source,
#: state_path)`` adds the module's nodes with :meth:`Lowerer.add`
LAYER_LOWERINGS = Lowerings(
    'LAYER_LOWERINGS', '', 'a function f(lowerer, module, source, '
    'state_path) that adds its nodes')
#: stateless torch modules: ``fn(lowerer, module, source, fold_bn)``
OP_LOWERINGS = Lowerings(
    'OP_LOWERINGS', '', 'a function f(lowerer, module, source, fold_bn) '
    'that adds its nodes')
#: neuron kinds, exact: ``fn(neuron, source) -> node``; option
#: ``fold_batchnorm`` (default True): a BatchNorm feeding the neuron may be
#: folded into the conv/linear before it
NEURON_LOWERINGS = Lowerings(
    'NEURON_LOWERINGS', 'neuron kind ', 'a function f(neuron, source) '
    'returning its node', exact=True)


# -- the result ------------------------------------------------------------
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


# -- the walk --------------------------------------------------------------
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


def batchnorm_affine(bn):
    """``(scale, shift)`` of an eval-mode BatchNorm as ``scale x + shift``."""
    scale = (bn.running_var + bn.eps).rsqrt()
    shift = -bn.running_mean * scale
    if bn.affine:
        scale, shift = scale * bn.weight, shift * bn.weight + bn.bias
    return scale.detach(), shift.detach()


class Lowerer:
    """The state of one lowering and what the registered lowerings call.

    ``example``: one input step ``[1, ...]``, for tracing branching
    backbones (None: refused there). ``layers``, ``folded`` (notes of what
    was folded or dropped) and ``folded_states`` make the
    :class:`LoweredNet`.
    """

    def __init__(self, example=None):
        self.example = example
        self.layers = []
        self.folded = []
        #: state names of ``model.step`` that the export folds away
        self.folded_states = []
        # index of the last weighted layer a following BatchNorm may fold
        # into, and the pooling layers since (None: no such layer)
        self._fold_target = None
        self._between = []

    # -- dispatch ----------------------------------------------------------
    def layer(self, module, source, state_path):
        """Lower a spiking layer, backbone or head by its registered
        lowering; a class with none is refused by name."""
        self._dispatch(LAYER_LOWERINGS, module, source, state_path)

    def stateless(self, module, source, fold_bn=True):
        """Lower a stateless torch module. ``fold_bn``: fold a BatchNorm
        into the conv/linear before it (where exact up to rounding) or
        keep it as the model's own op."""
        self._dispatch(OP_LOWERINGS, module, source, fold_bn)

    def _dispatch(self, registry, module, source, *args):
        """Run ``module``'s lowering from ``registry``; a class with none is
        refused by name (recorded and skipped in collecting mode)."""
        with refusals(source):
            lowering = registry.get(module)
            if lowering is None:
                raise LoweringError(f'layer {source}: '
                                    f'{registry.missing(module)}')
            lowering(self, module, source, *args)

    def neuron_node(self, neuron, source):
        """The node of a neuron module (refused by name if its kind has no
        lowering)."""
        lowering = NEURON_LOWERINGS.get(neuron)
        if lowering is None:
            raise LoweringError(f'layer {source}: '
                                f'{NEURON_LOWERINGS.missing(neuron)}')
        return lowering(neuron, source)

    def neuron(self, neuron, source, state_path):
        self.add(self.neuron_node(neuron, source), source, state_path)

    @staticmethod
    def folds_batchnorm(neuron):
        """Whether a BatchNorm feeding ``neuron`` may be folded into the
        conv/linear before it (the neuron kind's ``fold_batchnorm``)."""
        return NEURON_LOWERINGS.options(neuron).get('fold_batchnorm', True)

    # -- building blocks ---------------------------------------------------
    def note(self, text):
        """Record what was folded or dropped (shown in the report)."""
        self.folded.append(text)

    def input_of_next(self):
        """What the next layer receives for the example step: the example
        run through the nodes lowered so far, from a fresh state."""
        x = self.example
        for layer in self.layers:
            x, _, _ = layer.node.step(x, layer.node.init_state(x))
        return x

    def add(self, node, source, state_path=None, spike_source=None):
        """Append ``node``; its states are named ``<state_path>.<name>``."""
        names = [f'{state_path}.{n}' for n in node.state_names]
        self.layers.append(LoweredLayer(node, source, names, spike_source))
        if isinstance(node, WeightedNode):
            self._fold_target, self._between = len(self.layers) - 1, []
        elif isinstance(node, ModuleNode) and isinstance(
                node.module, _AVGPOOLS + _MAXPOOLS):
            self._between.append(node.module)
        else:
            self._fold_target, self._between = None, []

    def weighted(self, module, source):
        """A ``nn.Linear`` or ``nn.Conv1d/2d/3d`` as a :class:`WeightedNode`
        (a following BatchNorm may fold into it)."""
        if isinstance(module, nn.Linear):
            node = WeightedNode('linear', module.weight, module.bias)
        else:
            kind = next(k for cls, k in _CONVS.items()
                        if isinstance(module, cls))
            node = WeightedNode(kind, module.weight, module.bias,
                                module.stride, module.padding,
                                module.dilation, module.groups)
            if module.padding_mode != 'zeros':
                raise LoweringError(
                    f'layer {source}: padding_mode={module.padding_mode!r} '
                    'is not supported for deployment (zeros only)')
        self.add(node, source)

    def batchnorm(self, bn, source, fold=True):
        """Fold ``bn`` into the conv/linear before it where exact, else keep
        it as a channel affine (``fold`` False: as the eval-mode op)."""
        if not bn.track_running_stats or bn.running_mean is None:
            raise LoweringError(
                f'layer {source}: BatchNorm without running statistics '
                'cannot be deployed (track_running_stats=False)')
        if not fold:
            self.add(ModuleNode(copy.deepcopy(bn).eval()), source)
            self.note(
                f'BatchNorm {source} kept as an eval-mode BatchNorm op, not '
                'folded: the neuron after it amplifies rounding differences '
                'along the steps (nonlinear membrane dynamics)')
            return
        scale, shift = batchnorm_affine(bn)
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
            self.note(f'BatchNorm {source} folded into {target.source}{via}')
            return
        ndim = {nn.BatchNorm1d: 2, nn.BatchNorm2d: 4,
                nn.BatchNorm3d: 5}[type(bn)]
        self.add(ChannelAffineNode(scale, shift, ndim), source)
        self.note(f'BatchNorm {source} kept as a channel affine (no '
                  'conv/linear directly before it)')

    def stateful(self, module, source, state_path):
        """A branching backbone (a ``StatefulModule``): one
        :class:`StatefulNode` running its own ``compute``, each neuron
        lowered to its neuron node (found, with its state key, by running
        ``compute`` once on the example step)."""
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
        copy_.compute(self.input_of_next(), ctx)
        neurons = [self.neuron_node(n, names[id(n)]) for _, n in ctx.fired]
        keys = [key for key, _ in ctx.fired]
        paths = [names[id(n)] for _, n in ctx.fired]
        self.add(StatefulNode(copy_, keys, neurons, paths), source,
                 state_path)
        self.note(
            f'{source} ({type(module).__name__}): its own compute() traced '
            f'with {len(keys)} neurons lowered to plain-op neuron nodes; '
            'BatchNorms inside it stay eval-mode BatchNorm ops (not folded)')


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
    lowerer = Lowerer(example)
    with torch.no_grad():
        lowerer.layer(model.backbone, 'backbone', 'backbone')
        lowerer.layer(model.head, 'head', 'head')
    return LoweredNet(lowerer.layers, lowerer.folded, lowerer.folded_states)
