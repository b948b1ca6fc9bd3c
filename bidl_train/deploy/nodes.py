"""The executable nodes of a lowered (deployable) network.

Lowering (:mod:`bidl_train.deploy.lower`) turns a trained model into a flat
chain of these nodes. They compute the inference-time equations of the
model with plain tensor ops only: no autograd functions, no surrogate
gradients, no training noise, no dropout, no Python-side checks. That is
what TorchScript and ONNX can record, and the explicit weights (BatchNorm
already folded in) are what NIR and quantisation need.

Every node has ``init_state(x)`` (a list of fresh state tensors for an
input step ``x``) and ``step(x, states) -> (y, new_states, spikes)``, where
``spikes`` is the node's spike tensor (or ``None``, or a list of spike
tensors for a :class:`StatefulNode`), exported as extra outputs so that
deployed spikes can be compared with PyTorch's.
"""
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    'Node', 'WeightedNode', 'ModuleNode', 'ChannelAffineNode', 'LIFNode',
    'AggregateNode', 'StatefulNode'
]


class Node(nn.Module):
    """A stateless node by default; stateful nodes override the three."""

    #: local names of the state tensors, in order
    state_names = ()

    def init_state(self, x):
        return []

    def step(self, x, states):
        return self.forward(x), [], None


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


class LIFNode(Node):
    """BIDL LIF at inference (see :mod:`bidl_train.neurons.lif`).

    ``u = x + v; [u = norm(u)]; s = u > theta; r = hard/soft reset;
    v' = alpha r + beta``; output ``s`` or ``act([u, u-theta, r, v'][k])``.
    ``norm`` is the membrane BatchNorm in eval mode as a channel affine.
    The per-batch parameter tensors keep the neuron's own shapes
    (``()``, ``(C, 1, ...)`` or the feature shape), which broadcast over
    ``[B, ...]``.
    """

    state_names = ('v', )

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

    def init_state(self, x):
        return [torch.zeros_like(x)]

    def step(self, x, states):
        u = x + states[0]
        if self.norm is not None:
            u = self.norm(u)
        s = (u > self.theta).to(u.dtype)
        if self.reset == 'hard':
            r = s * self.v0 + (1.0 - s) * u
        else:
            r = u - s * self.theta
        v = self.alpha * r + self.beta
        if self.mode == 'spike':
            return s, [v], s
        y = (u, u - self.theta, r, v)[self.memb_mode]
        if self.act is not None:
            y = self.act(y)
        return y, [v], s


class AggregateNode(Node):
    """Temporal aggregation of the steps so far: ``mean``, ``sum``, ``last``.

    State: the running ``sum`` and the step ``count`` (a scalar), exactly as
    the classification head's single-step form keeps them.
    """

    state_names = ('sum', 'count')

    def __init__(self, mode):
        super().__init__()
        self.mode = mode

    def init_state(self, x):
        return [torch.zeros_like(x), torch.zeros((), dtype=x.dtype)]

    def step(self, x, states):
        total = states[0] + x
        # ones_like, not ``+ 1``: tracing turns a Python 1 into a [1]
        # constant, which would give the scalar count a batch axis
        count = states[1] + torch.ones_like(states[1])
        if self.mode == 'mean':
            y = total / count
        elif self.mode == 'sum':
            y = total
        else:
            y = x
        return y, [total, count], None


class _DeployContext:
    """The ``ctx`` a :class:`StatefulNode` hands to the backbone's own
    ``compute``: each ``ctx.fire(neuron, key, x)`` runs the lowered
    :class:`LIFNode` of that key on the state slot of that key (``fresh``:
    zeros shaped like ``x``) and records the new state and the spikes.
    Scopes share the records, as the model's ``SingleStepContext`` does."""

    def __init__(self, owner, states, prefix='', record=None):
        self.owner = owner
        self.states = states
        self.prefix = prefix
        self.record = {} if record is None else record

    def scope(self, name):
        return _DeployContext(self.owner, self.states,
                              f'{self.prefix}{name}.', self.record)

    def fire(self, neuron, key, x):
        index = self.owner.index[self.prefix + key]
        node = self.owner.neurons[index]
        state = (node.init_state(x) if self.states is None else
                 [self.states[index]])
        y, new_state, spikes = node.step(x, state)
        self.record[index] = (state[0], new_state[0], spikes)
        return y


class StatefulNode(Node):
    """A branching backbone (residual blocks, masked text input) run by its
    own ``compute`` with every neuron replaced by its lowered LIF node.

    The stateless maths (convs, eval-mode BatchNorm, residual sums, SEW
    connect functions, pooling, embedding and mask) is the model's own code,
    so the traced graph computes exactly what ``model.step`` computes; the
    neurons become plain-op :class:`LIFNode` s whose membranes are explicit
    state, one per ``ctx`` key (``stem.sn``, ``stages.0.0.sn1`` ...), in the
    order the keys were first fired.

    Args:
        module: a deep copy of the backbone (a ``StatefulModule``).
        keys (list[str]): the context keys of its neurons, in firing order.
        neurons (list[LIFNode]): the lowered neuron of each key.
        spike_names (list[str]): ``spikes.<module path>`` of each neuron.
    """

    def __init__(self, module, keys, neurons, spike_names):
        super().__init__()
        self.module = module
        self.keys = list(keys)
        self.index = {key: i for i, key in enumerate(self.keys)}
        self.neurons = nn.ModuleList(neurons)
        self.spike_names = list(spike_names)
        self.state_names = tuple(f'{key}.v' for key in self.keys)

    def _compute(self, x, states):
        ctx = _DeployContext(self, states)
        y = self.module.compute(x, ctx)
        missing = [k for i, k in enumerate(self.keys) if i not in ctx.record]
        if missing:  # a neuron the lowering saw did not fire
            raise RuntimeError(f'neurons {missing} did not fire')
        return y, [ctx.record[i] for i in range(len(self.keys))]

    def init_state(self, x):
        _, record = self._compute(x, None)
        return [torch.zeros_like(fresh) for fresh, _, _ in record]

    def step(self, x, states):
        y, record = self._compute(x, states)
        return (y, [new for _, new, _ in record],
                [spikes for _, _, spikes in record])
