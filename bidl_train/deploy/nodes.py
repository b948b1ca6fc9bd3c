"""The executable nodes of a lowered (deployable) network.

Lowering (:mod:`bidl_train.deploy.lower`) turns a trained model into a flat
chain of these nodes. They compute the inference-time equations of the
model with plain tensor ops only: no autograd functions, no surrogate
gradients, no training noise, no dropout, no Python-side checks. That is
what TorchScript and ONNX can record, and the explicit weights (BatchNorm
already folded in) are what NIR and quantisation need.

Every node follows the state protocol of :mod:`bidl_train.utils.state`
in its flat form: ``init_state(x)`` is the fresh state for an input step
``x``, a dict of tensors keyed by the node's :attr:`Node.state_names` (the
dotted names, relative to the node, that the model's own state has there:
``v``, ``neuron.v``, ``local``, ``stem.sn.v``), in that order; and
``step(x, state) -> (y, new_state, spikes)``, where ``spikes`` is the node's
spike tensor (or ``None``, or a list of spike tensors for a
:class:`StatefulNode`), exported as extra outputs so that deployed spikes
can be compared with PyTorch's. :class:`~bidl_train.deploy.nets.StepNet`
lays these dicts out as the step graph's positional state inputs.

No neuron equation is written here. :class:`LIFNode` runs BIDL's LIF
step of :class:`bidl_train.neurons.lif.LIFEquations` (the module's own
pieces) on its explicit parameter tensors; the other neuron kinds (ALIF,
CubaLIF, LIFPlus, Izhikevich) and plastic layers that learn at inference run
their own ``step`` code (:class:`NeuronNode`, :class:`PlasticNode`) on a
copy. The one deployment difference is :func:`use_plain_spikes`: the spike
function becomes a plain Heaviside, because the surrogates are custom
autograd functions, which neither tracing nor ONNX should see, and at
inference they compute exactly ``H(x) = x > 0``.
"""
import copy

import torch
import torch.nn.functional as F
from torch import nn

from bidl_train.layers.aggregation import fresh_aggregate, running_aggregate
from bidl_train.neurons.lif import LIFEquations
from bidl_train.neurons.surrogate import Heaviside
from bidl_train.utils.state import flatten_state, state_at, unflatten_state

__all__ = [
    'Node', 'WeightedNode', 'ModuleNode', 'ChannelAffineNode', 'LIFNode',
    'NeuronNode', 'PlasticNode', 'GroupMeanNode', 'AggregateNode',
    'StatefulNode',
    'plain_neuron', 'use_plain_spikes'
]


def use_plain_spikes(module):
    """THE deployment switch: ``module``'s spike function (its
    ``surrogate``, read by ``neuronal_fire``) becomes a plain Heaviside.

    Same forward numbers, no custom autograd function in the graph. Every
    deployed neuron (:class:`LIFNode`, :func:`plain_neuron`) goes through
    here. Returns ``module``.
    """
    module.surrogate = Heaviside()
    return module


class Node(nn.Module):
    """A stateless node by default; stateful nodes override the three."""

    #: local names of the state tensors, in order
    state_names = ()
    #: the states with no batch axis (shared by every sample of a batch,
    #: such as a persistent plastic layer's local weight)
    shared_states = ()
    #: whether ``step`` returns a spike tensor (exported as an output)
    emits_spikes = False
    #: whether the ONNX exporter can put ``step`` inside a ``Loop`` body,
    #: where loop-carried states have no static sizes (the unrolled ONNX
    #: graph then has a fixed T)
    onnx_loop = True
    #: whether ``step`` takes a third argument, the teaching signal (int64
    #: labels ``[B]``, ``-1``: none), fed by the graph's ``teacher`` input
    needs_teacher = False

    def init_state(self, x):
        """The fresh state ``{name: tensor}`` in :attr:`state_names` order."""
        return {}

    def step(self, x, state):
        return self.forward(x), {}, None


class WeightedNode(Node):
    """A linear or convolution synapse with explicit weight and bias.

    ``kind`` is ``'linear'`` or ``'conv1d'``/``'conv2d'``/``'conv3d'``.
    With :meth:`quantize_int8` the weight is stored as int8 with one float
    scale per output channel and dequantised in the graph, so the artefact
    really holds 8-bit weights.
    """

    def __init__(self, kind, weight, bias, stride=1, padding=0, dilation=1,
                 groups=1):
        super().__init__()
        self.kind = kind
        self.stride, self.padding = stride, padding
        self.dilation, self.groups = dilation, groups
        self.register_buffer('weight', weight.detach().clone())
        if bias is None:
            bias = torch.zeros(weight.shape[0], dtype=weight.dtype)
        self.register_buffer('bias', bias.detach().clone())
        self.int8 = False

    def quantize_int8(self):
        """Symmetric per-output-channel int8 weights; returns the scales."""
        w = self.weight.float()
        flat = w.reshape(w.shape[0], -1)
        scale = flat.abs().amax(1).clamp_min(1e-12) / 127.0
        shape = (-1, ) + (1, ) * (w.dim() - 1)
        q = torch.round(w / scale.reshape(shape)).clamp(-127, 127)
        del self.weight
        self.register_buffer('weight_int8', q.to(torch.int8))
        self.register_buffer('weight_scale', scale.reshape(shape))
        self.int8 = True
        return scale

    def effective_weight(self):
        if self.int8:
            return self.weight_int8.to(self.bias.dtype) * \
                self.weight_scale.to(self.bias.dtype)
        return self.weight

    def forward(self, x):
        w = self.effective_weight()
        if self.kind == 'linear':
            return F.linear(x, w, self.bias)
        conv = {'conv1d': F.conv1d, 'conv2d': F.conv2d,
                'conv3d': F.conv3d}[self.kind]
        return conv(x, w, self.bias, self.stride, self.padding,
                    self.dilation, self.groups)

    def extra_repr(self):
        return (f'kind={self.kind!r}, weight={tuple(self.weight_int8.shape)}'
                if self.int8 else
                f'kind={self.kind!r}, weight={tuple(self.weight.shape)}')


class ModuleNode(Node):
    """A stateless torch module kept as is (pooling, flatten, activation)."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        return self.module(x)


class ChannelAffineNode(Node):
    """``x * scale + shift`` per channel (dim 1): a BatchNorm in eval mode
    that could not be folded into a weighted layer."""

    def __init__(self, scale, shift, ndim):
        super().__init__()
        shape = (1, -1) + (1, ) * (ndim - 2)
        self.register_buffer('scale', scale.detach().reshape(shape).clone())
        self.register_buffer('shift', shift.detach().reshape(shape).clone())

    def forward(self, x):
        return x * self.scale + self.shift


class LIFNode(LIFEquations, Node):
    """BIDL LIF at inference: the LIF's own step
    (:meth:`~bidl_train.neurons.lif.LIFEquations.lif_step`) on explicit
    parameter tensors, with :func:`use_plain_spikes`.

    ``norm`` is the membrane BatchNorm in eval mode as a channel affine.
    The per-batch parameter tensors keep the neuron's own shapes
    (``()``, ``(C, 1, ...)`` or the feature shape), which broadcast over
    ``[B, ...]``.
    """

    state_names = ('v', )
    # the spikes are exported in analog mode too (verification skips them)
    emits_spikes = True
    # no gradient flows at inference: the reset's spike needs no detaching
    detach_reset = False

    def __init__(self, alpha, beta, theta, v0, reset='hard', mode='spike',
                 memb_mode=0, act=None, norm=None):
        super().__init__()
        for name, value in (('alpha', alpha), ('beta', beta),
                            ('theta', theta), ('v0', v0)):
            self.register_buffer(name, value.detach().clone().float())
        self.reset = reset
        self.mode = mode
        self.memb_mode = memb_mode
        self.act = act
        self.norm = norm
        use_plain_spikes(self)

    def leak_factor(self):
        """The leak the neuron used (IF's 1, PLIF's sigmoid(w)), frozen."""
        return self.alpha

    def init_state(self, x):
        return {'v': torch.zeros_like(x)}

    def step(self, x, state):
        y, s, v = self.lif_step(x, state['v'], self.theta)
        return y, {'v': v}, s


def plain_neuron(neuron):
    """A deep copy of ``neuron`` for export: eval mode (no training noise,
    BatchNorm on running statistics) and a plain Heaviside spike."""
    return use_plain_spikes(copy.deepcopy(neuron).eval())


def _in_order(flat, names):
    """``flat`` (a flat state) with exactly the keys ``names``, in order."""
    return {name: flat[name] for name in names}


class NeuronNode(Node):
    """Any other neuron kind (ALIF, CubaLIF, LIFPlus, Izhikevich), run by its
    own ``step`` on a :func:`plain_neuron` copy.

    The node's state is the neuron's own state dict, in the neuron's
    ``state_names`` order (``v, a`` for ALIF, ``i, v`` for CubaLIF ...),
    so every state tensor is an explicit graph input and output. Its output
    is exported as spikes when the neuron spikes (``mode == 'spike'``;
    Izhikevich always spikes).
    """

    def __init__(self, neuron):
        super().__init__()
        self.neuron = plain_neuron(neuron)
        self.state_names = tuple(neuron.state_names)
        self.emits_spikes = getattr(neuron, 'mode', 'spike') == 'spike'

    def init_state(self, x):
        return _in_order(self.neuron.init_state(x), self.state_names)

    def step(self, x, state):
        y, new = self.neuron.step(x, state)
        return (y, _in_order(new, self.state_names),
                y if self.emits_spikes else None)


class PlasticNode(Node):
    """A plastic layer that learns at inference, run by its own ``step``.

    The layer's state ``{'neuron': ..., 'local': L, 'rule': traces}``,
    flattened (:func:`~bidl_train.utils.state.flatten_state`), is the
    node's state ``neuron.<name>...``, ``local``, ``rule.<name>...``, so
    the local weight and the rule's traces are explicit graph inputs and
    outputs and the local update (the rule's delta, the forgetting, the
    bound) runs inside the graph, as in
    ``layer.step``. The layer is a deep copy in eval mode with a
    :func:`plain_neuron`.

    A rule that needs a teaching signal (``RewardSTDP`` with its gate on)
    makes the node :attr:`needs_teacher`: ``step`` takes the labels
    ``[B]`` (int64, ``-1``: no label, no reward for that sample) and hands
    them to the layer's ``step(x, state, teacher=...)``, as training hands
    the labels of each batch to the model.

    A persistent layer's local weight (and a persistent rule state such as
    BCM's threshold) is shared by the batch: no batch axis
    (:attr:`shared_states`); its initial value is the layer's buffer. A
    fast layer's local weight is per sample and starts at zeros.

    Args:
        layer: the ``PlasticFcLif``/``PlasticConv2dLif`` module.
        rule_keys (list[str]): the names of the rule's state entries, in
            the order its ``init_state`` gives them.
    """

    def __init__(self, layer, rule_keys):
        super().__init__()
        self.layer = copy.deepcopy(layer).eval()
        self.layer.neuron = plain_neuron(layer.neuron)
        rule = layer.rule
        self.needs_teacher = bool(rule.needs_teacher and getattr(
            rule, 'gate', True))
        self.neuron_names = tuple(layer.neuron.state_names)
        self.rule_keys = tuple(rule_keys)
        self.state_names = (tuple(f'neuron.{n}' for n in self.neuron_names) +
                            ('local', ) +
                            tuple(f'rule.{k}' for k in self.rule_keys))
        if layer.plasticity == 'persistent':
            self.shared_states = ('local', ) + tuple(
                f'rule.{k}' for k in layer.rule.persistent_keys)
            # its local current is a conv with the local weight (state) as
            # kernel, and ONNX's Conv needs the kernel size as a constant
            self.onnx_loop = not hasattr(layer, 'conv')
        self.emits_spikes = getattr(layer.neuron, 'mode', 'spike') == 'spike'

    def init_state(self, x):
        """The state ``layer.step`` starts from: a fresh neuron, ``L`` from
        the buffer (persistent) or zeros (fast), and the rule state the
        layer creates on its first step (zero traces, persistent entries
        from the buffers), shaped by running the synapse and neuron once."""
        layer = self.layer
        local = layer.init_state(x)['local']
        current = layer.after_synapse(layer.global_current(x) +
                                      layer.local_current(x, local))
        neuron = layer.neuron.init_state(current)
        y, _ = layer.neuron.step(current, neuron)
        pre, post = layer.pre_post(x, y)
        rule = layer._rule_state(pre, post,
                                 layer.plasticity == 'persistent')
        fresh = dict(neuron=neuron, local=local, rule=rule)
        return _in_order(flatten_state(fresh), self.state_names)

    def step(self, x, state, teacher=None):
        """``teacher``: the labels of a node that :attr:`needs_teacher`
        (None while the fresh state is shaped: nothing is learned then)."""
        y, new = self.layer.step(x, unflatten_state(state), teacher=teacher)
        return (y, _in_order(flatten_state(new), self.state_names),
                y if self.emits_spikes else None)


class GroupMeanNode(Node):
    """``[B, C*G] -> [B, C]``: the mean of each of ``C`` consecutive groups
    of ``G`` features (a population vote). The reshape target is constant
    (``[-1, C, G]``), so the rank is known inside an ONNX ``Loop`` too."""

    def __init__(self, groups, size):
        super().__init__()
        self.groups, self.size = groups, size

    def forward(self, x):
        return x.reshape(-1, self.groups, self.size).mean(-1)


class AggregateNode(Node):
    """Temporal aggregation of the steps so far: ``mean``, ``sum``, ``last``.

    State: the running ``sum`` and the step ``count`` (a scalar), by the
    same :func:`~bidl_train.layers.aggregation.running_aggregate` as the
    heads' and the ``Aggregation`` layer's single-step form.
    """

    state_names = ('sum', 'count')

    def __init__(self, mode):
        super().__init__()
        self.mode = mode

    def init_state(self, x):
        return fresh_aggregate(x)

    def step(self, x, state):
        y, new = running_aggregate(self.mode, x, state)
        return y, new, None


class _DeployContext:
    """The ``ctx`` a :class:`StatefulNode` hands to the backbone's own
    ``compute``: each ``ctx.fire(neuron, key, x)`` runs the lowered neuron
    node of that key on the state at that key of the nested ``state``
    (``None``: the node's own initial state for ``x``) and records its old
    and new states and spikes. Scopes share the records, as the model's
    ``SingleStepContext`` does."""

    def __init__(self, owner, state, prefix='', record=None):
        self.owner = owner
        self.state = state
        self.prefix = prefix
        self.record = {} if record is None else record

    def scope(self, name):
        return _DeployContext(self.owner, self.state,
                              f'{self.prefix}{name}.', self.record)

    def fire(self, neuron, key, x):
        full = self.prefix + key
        index = self.owner.index[full]
        node = self.owner.neurons[index]
        state = (node.init_state(x) if self.state is None else
                 state_at(self.state, full))
        y, new_state, spikes = node.step(x, state)
        self.record[index] = (state, new_state, spikes)
        return y


class StatefulNode(Node):
    """A branching backbone (residual blocks, attention, masked text input)
    run by its own ``compute`` with every neuron replaced by its lowered
    node (:class:`LIFNode` or :class:`NeuronNode`).

    The stateless maths (convs, eval-mode BatchNorm, residual sums, SEW
    connect functions, attention products, pooling, embedding and mask) is
    the model's own code, so the traced graph computes exactly what
    ``model.step`` computes; the neurons become plain-op nodes whose states
    are explicit, named ``<ctx key>.<state>`` (``stem.sn.v``,
    ``blocks.0.attn.q.v``), in the order the keys were first fired.

    Args:
        module: a deep copy of the backbone (a ``StatefulModule``).
        keys (list[str]): the context keys of its neurons, in firing order.
        neurons (list[Node]): the lowered neuron of each key.
        neuron_names (list[str]): the module path of each neuron.
    """

    def __init__(self, module, keys, neurons, neuron_names):
        super().__init__()
        self.module = module
        self.keys = list(keys)
        self.index = {key: i for i, key in enumerate(self.keys)}
        self.neurons = nn.ModuleList(neurons)
        self.neuron_names = list(neuron_names)
        self.spike_names = [f'spikes.{name}' for name, node in zip(
            neuron_names, neurons) if node.emits_spikes]
        self.state_names = tuple(
            f'{key}.{n}' for key, node in zip(self.keys, neurons)
            for n in node.state_names)

    def _compute(self, x, state):
        ctx = _DeployContext(
            self, None if state is None else unflatten_state(state))
        y = self.module.compute(x, ctx)
        missing = [k for i, k in enumerate(self.keys) if i not in ctx.record]
        if missing:  # a neuron the lowering saw did not fire
            raise RuntimeError(f'neurons {missing} did not fire')
        return y, [ctx.record[i] for i in range(len(self.keys))]

    def _flat(self, states):
        """The neurons' states (one per key, in key order) as this node's
        flat state, named ``<key>.<state>``."""
        return _in_order(flatten_state(dict(zip(self.keys, states))),
                         self.state_names)

    def init_state(self, x):
        _, record = self._compute(x, None)
        return self._flat([fresh for fresh, _, _ in record])

    def step(self, x, state):
        y, record = self._compute(x, state)
        return (y, self._flat([new for _, new, _ in record]),
                [spikes for _, _, spikes in record if spikes is not None])
