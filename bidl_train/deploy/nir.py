"""NIR target: the Neuromorphic Intermediate Representation (HDF5).

Follows ``shared/NIR.md`` and ``docs/nir.md``: a BIDL LIF (leak alpha,
beta = 0, v0 = 0, hard reset) becomes ``nir.LIF`` with ``tau = dt / (1 -
alpha)``, ``r = 1``, ``v_leak = 0``, ``v_reset = 0`` and ``v_threshold =
theta * (1 - alpha)`` at ``dt = 1e-4`` (the membrane is scaled by ``1 -
alpha``), which the forward-Euler importers (snnTorch, Norse, Lava)
reproduce spike for spike. PLIF is a LIF with ``alpha = sigmoid(w)`` and
maps the same way. IF (``alpha = 1``, no leak) becomes ``nir.IF`` with ``r
= 1/dt`` and ``v_threshold = theta``: forward Euler gives ``v += dt * r * I
= I``, which is BIDL's IF exactly; Norse (which ignores r and dt for IF and
adds I) reproduces it, snnTorch 1.0 cannot import ``nir.IF`` at all.
CubaLIF becomes ``nir.CubaLIF`` with ``CubaLIF.nir_parameters(dt)``
(``w_in = tau_syn/dt``, ``r = tau_mem/dt``: forward Euler is then the
neuron's own update, unscaled).

BatchNorm is already folded into the conv/linear by the lowering; average
pooling becomes ``SumPool2d`` with ``1/k^2`` folded into the next weighted
layer; ``Flatten.start_dim`` counts dims of the unbatched shape. A
BatchNorm with no conv/linear before it (BIDL's input BatchNorm) is a
per-channel affine map: folded into the conv/linear after it where that is
exact (a linear, or a conv without zero padding, since a shifted input's
border is padded with 0, not with the shift), else a channel-diagonal 1x1
``Conv2d`` (or ``Affine``) with bias. A LIF with BatchNorm on its membrane
(BIDL's ``norm_state``, ``u = a (x + v) + b``) is a LIF on ``u`` with leak
``a alpha`` per channel: ``a`` and ``b`` are folded into the conv/linear
right before it, the neuron is a ``CubaLIF`` with an instantaneous synapse
(:func:`~.nir_graph.membrane_lif_to_nir`); a leak outside ``[0, 1)`` is
refused naming the channel. A population head's group vote and scale
become an ``Affine`` before the (outside) temporal mean. The
residual backbones ResNetLif and SEWResNet (ADD) become graphs whose
branches join by several edges into one node, which receives their sum:
each branching backbone and its blocks have an entry in
:data:`~.nir_graph.NIR_LOWERINGS` (:mod:`.lowerings.resnet`,
:mod:`.lowerings.sew_resnet`); one with none is refused by name. The
head's temporal aggregation is not part of the graph: the graph outputs
the per-step logits and the caller aggregates them over time.

Everything NIR cannot express exactly is refused by layer name: other
neuron kinds (ALIF, LIFPlus, Izhikevich ...; any node kind not listed is
refused, never passed through), soft reset, BatchNorm on the membrane
inside a branching backbone or with no conv/linear right before it,
analog output, beta or v0 != 0, per-channel/per-neuron parameters, grouped
or non-2D convs, max pooling, activations, SEW's AND/IAND connect
functions, lite ResNets (ReLU blocks), branching backbones with no NIR
lowering.
"""
import json
import os.path as osp
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.layers.aggregation import running_aggregate
from bidl_train.registry import DEPLOY_TARGETS
from .artefacts import write_initial_state, write_manifest
from .base import DeployTarget, Export, Runtime, UnsupportedFeature
from .blockers import refusals
from .nir_graph import (DT, GraphBuilder, add_stateful, check_neuron,
                        check_stateful, cuba_of, load_nir, membrane_affine)
from .nodes import (AggregateNode, ChannelAffineNode, GroupMeanNode,
                    LIFNode, ModuleNode, StatefulNode, WeightedNode)

__all__ = ['NirTarget', 'NirRuntime', 'DT']

def _folds_into_next(layers, i):
    """Whether the first layer after ``i`` that is not a Flatten is a
    conv/linear (a pooling's scale is folded into its weights)."""
    nxt = next((lay.node for lay in layers[i + 1:]
                if not isinstance(lay.node, ModuleNode) or
                not isinstance(lay.node.module, nn.Flatten)), None)
    return isinstance(nxt, WeightedNode)


def _aggregate_index(nodes):
    """Index of the head's temporal aggregation (the last AggregateNode)."""
    return max(i for i, node in enumerate(nodes)
               if isinstance(node, AggregateNode))


def _affine_of(node):
    """``(scale, shift)`` per channel of a ChannelAffineNode (1-D)."""
    return node.scale.flatten(), node.shift.flatten()


def _tail_affine(nodes):
    """The channel affines after the aggregation (PopulationClsHead's
    scale) combined into one ``(scale, shift)``, or None when there are
    none. They commute with a mean or last-step aggregation, so the graph
    applies them per step before it."""
    scale = shift = None
    for node in nodes:
        s, t = _affine_of(node)
        scale, shift = (s, t) if scale is None else (scale * s, shift * s + t)
    return None if scale is None else (scale, shift)


def _is_identity(weight, bias):
    return (weight.shape[0] == weight.shape[1] and bool(
        (weight == torch.eye(weight.shape[0])).all()) and
        not bool(bias.any()))


#: stride, padding, dilation and groups of a channel-diagonal 1x1 conv
_DIAGONAL_CONV = SimpleNamespace(stride=(1, 1), padding=(0, 0),
                                 dilation=(1, 1), groups=1)


def _membrane_bn_after(nodes, i):
    """The LIF with membrane BatchNorm right after node ``i``, or None."""
    nxt = nodes[i + 1] if i + 1 < len(nodes) else None
    return nxt if type(nxt) is LIFNode and nxt.norm is not None else None


def _affine_folds_into(nodes, i, shift):
    """Whether the channel affine at ``i`` folds exactly into the weighted
    layer right after it: a linear, or a conv whose zero padding stays zero
    (no padding, or no shift: a shifted input's border would be padded
    with 0, not with the shift)."""
    nxt = nodes[i + 1] if i + 1 < len(nodes) else None
    if not isinstance(nxt, WeightedNode):
        return False
    if nxt.kind == 'linear':
        return True
    return nxt.kind == 'conv2d' and (
        all(p == 0 for p in _pair(nxt.padding)) or not bool(shift.any()))


@DEPLOY_TARGETS.register_module(name='nir')
class NirTarget(DeployTarget):
    name = 'nir'
    description = ('Neuromorphic Intermediate Representation (HDF5) for '
                   'Loihi/Lava, SpiNNaker2, Speck, Xylo, snnTorch, Norse')
    precisions = ('fp32', )

    def check(self, lowered):
        """Refuse by layer name whatever has no exact NIR form; a node kind
        not listed here is refused too (never passed through)."""
        layers = lowered.layers
        aggregate = max((i for i, lay in enumerate(layers)
                         if isinstance(lay.node, AggregateNode)), default=None)
        for i, layer in enumerate(layers):
            with refusals(layer.source):  # collecting mode: record, go on
                self._check_layer(layers, i, aggregate)

    def _check_layer(self, layers, i, aggregate):
        """Refuse layer ``i`` if it has no exact NIR form (``aggregate``:
        the index of the head's temporal aggregation, or None)."""
        node, name = layers[i].node, layers[i].source
        refuse = lambda feature, hint='': (  # noqa: E731
            UnsupportedFeature('nir', name, feature, hint))
        if aggregate is not None and i > aggregate:
            self._check_tail(node, layers[aggregate].node, refuse)
        elif isinstance(node, LIFNode) or hasattr(node, 'neuron'):
            # a neuron: LIF family and CubaLIF pass their checks, any
            # other kind (ALIF, LIFPlus, Izhikevich ...) is refused
            check_neuron(node, name, membrane_bn=True)
            prev = layers[i - 1].node if i else None
            if type(node) is LIFNode and node.norm is not None and not (
                    isinstance(prev, WeightedNode) and
                    prev.kind in ('linear', 'conv2d')):
                raise refuse('BatchNorm on the membrane (norm_state) with'
                             ' no conv/linear directly before the neuron'
                             ' to fold its scale into')
        elif isinstance(node, WeightedNode):
            if node.kind not in ('linear', 'conv2d'):
                raise refuse(f'{node.kind} (only 2D convs)')
            if node.kind == 'conv2d' and node.groups != 1:
                raise refuse('grouped convolution (groups='
                             f'{node.groups})')
        elif isinstance(node, ModuleNode):
            self._check_module(node.module, layers, i, refuse)
        elif isinstance(node, StatefulNode):
            check_stateful(node, name)
            if not _folds_into_next(layers, i):
                raise refuse('global average pooling not followed by a '
                             'conv/linear to fold its 1/(H W) into')
        elif isinstance(node, AggregateNode):
            pass  # the head's, outside the graph (checked above)
        elif isinstance(node, ChannelAffineNode):
            # a BatchNorm with no conv/linear before it: folded into
            # the layer after it or a channel-diagonal 1x1 conv/Affine
            if node.scale.dim() not in (2, 4):
                raise refuse('BatchNorm on a 1D/3D map with no conv/'
                             'linear before it to fold into')
        elif isinstance(node, GroupMeanNode):
            pass  # a linear map: an Affine
        else:
            raise refuse(f'{type(node).__name__} (no exact NIR mapping)')

    @staticmethod
    def _check_tail(node, aggregate, refuse):
        """After the temporal aggregation only channel affines (a
        population head's scale) may follow; they commute with it."""
        if not isinstance(node, ChannelAffineNode) or node.scale.dim() != 2:
            raise refuse(f'{type(node).__name__} after the temporal '
                         'aggregation')
        if aggregate.mode == 'sum' and bool(node.shift.any()):
            raise refuse('a shift after a summing aggregation (it would '
                         'count once per step)')

    @staticmethod
    def _check_module(module, layers, i, refuse):
        if isinstance(module, nn.AvgPool2d):
            # SumPool2d * 1/k^2 is the average only over full windows that
            # count the (zero) padding
            if module.ceil_mode:
                raise refuse('average pooling with ceil_mode=True (partial '
                             'windows)')
            if module.divisor_override is not None:
                raise refuse('average pooling with divisor_override='
                             f'{module.divisor_override}')
            if not module.count_include_pad and any(
                    p > 0 for p in _pair(module.padding)):
                raise refuse('average pooling with padding and '
                             'count_include_pad=False')
            if not _folds_into_next(layers, i):
                raise refuse('average pooling not followed by a conv/linear '
                             'to fold its 1/k^2 into')
        elif not isinstance(module, nn.Flatten):
            raise refuse(f'{type(module).__name__} (no exact NIR node; NIR '
                         'has no max pooling)')

    def export(self, step_net, x_seq, out_dir):
        x = x_seq[0, :1].float()
        g = GraphBuilder(x)
        with torch.no_grad():
            sources, x = _Chain(g, step_net).build(x)
        graph = g.graph(sources, x)
        path = osp.join(out_dir, 'model.nir')
        g.nir.write(path, graph)
        state_names, fresh = [], []
        for key, _, states in g.neurons:
            shape = graph.nodes[key].v_threshold.shape
            for state in states:
                state_names.append(f'nir.{key}.{state}')
                fresh.append(torch.zeros((1, ) + shape))
        aggregate = step_net.nodes[_aggregate_index(step_net.nodes)]
        names = state_names + ['head.sum', 'head.count']
        files = dict(graph=path, initial_state=write_initial_state(
            out_dir, names, fresh + list(aggregate.init_state(x).values())))
        files['manifest'] = write_manifest(
            out_dir, format='nir', dt=DT, file='model.nir',
            lif_mapping='tau = dt/(1-alpha), r = 1, v_leak = 0, v_reset = 0,'
            ' v_threshold = theta*(1-alpha)',
            if_mapping='IF (alpha = 1): r = 1/dt, v_threshold = theta, '
            'v_reset = 0',
            cuba_lif_mapping='CubaLIF: tau_syn = dt/(1-alpha_syn), tau_mem '
            '= dt/(1-alpha), w_in = tau_syn/dt, r = tau_mem/dt, v_leak = 0,'
            ' v_reset = 0, v_threshold = theta',
            membrane_batchnorm_mapping='LIF with membrane BatchNorm (u = a '
            '(x + v) + b per channel): BatchNorm scale a folded into the '
            'conv/linear before it (weight a w, bias a bias + b), the '
            'neuron a CubaLIF with tau_syn = dt, w_in = 1, tau_mem = dt/(1 - '
            'a alpha), r = tau_mem/dt, v_leak = 0, v_reset = 0, v_threshold '
            '= theta',
            neurons=[dict(node=key, kind=kind, states=list(states))
                     for key, kind, states in g.neurons],
            aggregation=aggregate.mode,
            note='the graph outputs per-step logits; aggregate them over '
            'time (mean/sum/last) outside the graph; a node with several '
            'incoming edges receives their sum; feed one unbatched sample '
            'at a time when a Flatten follows a conv')
        spikes = list(step_net.spike_names)
        if len(spikes) != len(g.neurons):
            raise RuntimeError(f'{len(g.neurons)} NIR neurons for '
                               f'{len(spikes)} spiking layers')
        return Export(files, ['x'] + names, ['y'] + names + spikes, names,
                      spikes, notes=[
                          f'NIR dt = {DT}; head aggregation '
                          f'({aggregate.mode}) outside the graph'],
                      compare_states=False)

    def load(self, export):
        with open(export.files['manifest']) as f:
            manifest = json.load(f)
        return NirRuntime(export.files['graph'], manifest['dt'],
                          [n['node'] for n in manifest['neurons']],
                          manifest['aggregation'])


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


class _Chain:
    """Builds the NIR graph of a checked chain of lowered nodes.

    Scales that have no node of their own are carried to the next weighted
    layer and folded into it: an average pooling's ``1/k^2`` (written as a
    SumPool2d), a channel affine (a BatchNorm with no conv/linear before
    it) where that layer's zero padding allows, and the scale ``a`` and
    shift ``b`` of the membrane BatchNorm of the LIF right after it. The
    channel affines after the aggregation (a population head's scale) go
    into the last weighted layer or a diagonal Affine.
    """

    def __init__(self, g, step_net):
        self.g, self.step_net = g, step_net
        nodes = list(step_net.nodes)
        self.end = _aggregate_index(nodes)
        self.nodes = nodes[:self.end]
        self.tail = _tail_affine(nodes[self.end + 1:])
        self.pool_scale = 1.0   # a SumPool2d's 1/k^2, for the next layer
        self.affine = None      # a channel affine (scale, shift), likewise

    def build(self, x):
        sources = ['input']
        for i, node in enumerate(self.nodes):
            sources, x = self.node(i, node, sources, x)
        if self.tail is not None:  # nothing took it: a diagonal Affine
            sources, x = self.diagonal(f'n{self.end}', *self.tail, sources,
                                       x)
        return sources, x

    def last_weighted(self, i):
        """Whether node ``i`` produces the per-step logits (the tail can be
        folded into it)."""
        return i == len(self.nodes) - 1

    def take_tail(self, i, weight, bias):
        if self.tail is None or not self.last_weighted(i):
            return weight, bias
        scale, shift = self.tail
        self.tail = None
        return weight * scale.reshape(-1, 1), bias * scale + shift

    def node(self, i, node, sources, x):
        g, key = self.g, f'n{i}'
        if isinstance(node, WeightedNode):
            return self.weighted(i, node, sources, x)
        if isinstance(node, LIFNode) or cuba_of(node) is not None:
            return g.neuron(key, node, sources, x)
        if isinstance(node, StatefulNode):
            sources, x, self.pool_scale = add_stateful(
                g, node, key, self.step_net.sources[i], sources, x)
            return sources, x
        if isinstance(node, ChannelAffineNode):
            scale, shift = _affine_of(node)
            scale = scale * self.pool_scale
            self.pool_scale = 1.0
            if _affine_folds_into(self.nodes, i, shift):
                self.affine = (scale, shift)
                return sources, x
            return self.diagonal(key, scale, shift, sources, x)
        if isinstance(node, GroupMeanNode):
            eye = torch.eye(node.groups)
            weight = torch.kron(eye, torch.full((1, node.size),
                                                1.0 / node.size))
            weight, bias = self.take_tail(i, weight,
                                          torch.zeros(node.groups))
            if _is_identity(weight, bias):  # one neuron per class
                return sources, x
            return self.affine_node(key, weight, bias, sources, x)
        if isinstance(node.module, nn.AvgPool2d):
            pool = node.module
            k = _pair(pool.kernel_size)
            self.pool_scale = 1.0 / (k[0] * k[1])
            return g.sum_pool(key, k, _pair(pool.stride or k),
                              _pair(pool.padding), sources, x)
        flat = node.module  # Flatten
        end = flat.end_dim - 1 if flat.end_dim >= 0 else flat.end_dim
        sources = g.add(key, g.nir.Flatten(
            input_type={'input': np.array(x.shape[1:])},
            start_dim=flat.start_dim - 1, end_dim=end), sources)
        return sources, node(x)

    def weighted(self, i, node, sources, x):
        """A conv/linear with everything pending folded in."""
        weight = node.weight * self.pool_scale
        bias = node.bias
        self.pool_scale = 1.0
        if self.affine is not None:  # w (s x + t) = (w s) x + w t
            scale, shift = self.affine
            self.affine = None
            if node.kind == 'linear':
                bias = bias + weight @ shift
                weight = weight * scale.reshape(1, -1)
            else:  # no padding (or no shift): every tap sees the shift
                bias = bias + weight.sum((2, 3)) @ shift
                weight = weight * scale.reshape(1, -1, 1, 1)
        lif = _membrane_bn_after(self.nodes, i)
        if lif is not None:  # u = a (w x + bias + v) + b
            a, b = membrane_affine(lif)
            weight = weight * a.reshape((-1, ) + (1, ) * (weight.dim() - 1))
            bias = bias * a + b
        weight, bias = self.take_tail(i, weight, bias)
        if node.kind == 'linear':
            return self.affine_node(f'n{i}', weight, bias, sources, x)
        return self.g.conv(f'n{i}', weight, bias, node, sources, x)

    def affine_node(self, key, weight, bias, sources, x):
        sources = self.g.add(key, self.g.nir.Affine(
            weight=weight.numpy(), bias=bias.numpy()), sources)
        return sources, F.linear(x, weight, bias)

    def diagonal(self, key, scale, shift, sources, x):
        """``scale x + shift`` per channel as a channel-diagonal 1x1 conv
        (maps) or Affine (vectors)."""
        weight = torch.diag(scale)
        if x.dim() == 2:
            return self.affine_node(key, weight, shift, sources, x)
        return self.g.conv(key, weight[:, :, None, None], shift,
                           _DIAGONAL_CONV, sources, x)


def _topological(graph):
    """Node keys from ``input`` to ``output``, every node after all its
    sources (in rounds: each round takes every node whose sources are all
    done, in the file's node order)."""
    sources = {key: [] for key in graph.nodes}
    for src, dst in graph.edges:
        sources[dst].append(src)
    order, done = [], set()
    while len(order) < len(graph.nodes):
        ready = [k for k in graph.nodes if k not in done and
                 all(s in done for s in sources[k])]
        if not ready:
            raise ConfigError('the NIR graph has a cycle; recurrent graphs '
                              'are not executable here')
        order.extend(ready)
        done.update(ready)
    return order, sources


class NirRuntime(Runtime):
    """Runs a ``.nir`` file as the forward-Euler importers do.

    Read back with ``nir.read`` (which re-checks shapes) and executed from
    the file alone, with no access to the PyTorch model: nodes in
    topological order, each fed the sum of its sources' outputs. ``LIF``:
    ``v = (1 - dt/tau) v + (dt/tau) (r I + v_leak)``; ``CubaLIF``: first
    ``I = (1 - dt/tau_syn) I + (dt/tau_syn) w_in x``, then the LIF update
    with ``tau_mem`` driven by ``I``; both spike where ``v > v_threshold``,
    then ``v = v_reset``. ``neurons``: the neuron node keys in state order;
    the outputs follow the export: aggregated logits, the neuron states,
    the running sum and count, then the spikes.
    """

    def __init__(self, path, dt, neurons, aggregation='mean'):
        nir = load_nir()
        self.graph = nir.read(path)
        self.dt = dt
        self.neurons = list(neurons)
        self.aggregation = aggregation
        self.order, self.sources = _topological(self.graph)

    def _neuron(self, node, x, states):
        """One step of a neuron node: (spikes, new states)."""
        nir = load_nir()
        p = {n: torch.from_numpy(np.asarray(getattr(node, n),
                                            dtype=np.float32))
             for n in ('tau', 'tau_syn', 'tau_mem', 'r', 'v_leak',
                       'v_threshold', 'v_reset', 'w_in')
             if hasattr(node, n)}
        new = []
        if isinstance(node, nir.CubaLIF):
            k = self.dt / p['tau_syn']
            x = (1 - k) * states[0] + k * (p['w_in'] * x)
            new.append(x)
            states = states[1:]
            p['tau'] = p['tau_mem']
        if isinstance(node, nir.IF):  # dv/dt = r I
            v = states[0] + (self.dt * p['r']) * x
        else:
            k = self.dt / p['tau']
            v = (1 - k) * states[0] + k * (p['r'] * x + p['v_leak'])
        s = (v > p['v_threshold']).float()
        new.append(torch.where(s > 0, p['v_reset'].expand_as(v), v))
        return s, new

    @torch.no_grad()
    def step(self, x_t, states):
        nir = load_nir()
        states = [torch.from_numpy(np.asarray(s, dtype=np.float32))
                  for s in states]
        slots, j = {}, 0
        for key in self.neurons:
            n = 2 if isinstance(self.graph.nodes[key], nir.CubaLIF) else 1
            slots[key], j = (j, j + n), j + n
        new_states, spikes = list(states), {}
        out = {'input': torch.from_numpy(np.asarray(x_t, dtype=np.float32))}
        for key in self.order:
            node = self.graph.nodes[key]
            if key == 'input':
                continue
            x = out[self.sources[key][0]]
            for src in self.sources[key][1:]:
                x = x + out[src]
            if isinstance(node, nir.Affine):
                x = F.linear(x, torch.from_numpy(node.weight),
                             torch.from_numpy(node.bias))
            elif isinstance(node, nir.Conv2d):
                x = F.conv2d(x, torch.from_numpy(node.weight),
                             torch.from_numpy(node.bias),
                             tuple(node.stride), tuple(node.padding),
                             tuple(node.dilation), int(node.groups))
            elif isinstance(node, nir.SumPool2d):
                k = tuple(int(v) for v in node.kernel_size)
                x = F.avg_pool2d(x, k, tuple(int(v) for v in node.stride),
                                 tuple(int(v) for v in node.padding)) * (
                                     k[0] * k[1])
            elif isinstance(node, nir.Flatten):
                end = node.end_dim + 1 if node.end_dim >= 0 else node.end_dim
                x = x.flatten(node.start_dim + 1, end)
            elif isinstance(node, (nir.LIF, nir.IF, nir.CubaLIF)):
                a, b = slots[key]
                x, new_states[a:b] = self._neuron(node, x, states[a:b])
                spikes[key] = x
            elif not isinstance(node, nir.Output):
                raise ConfigError(f'NIR node {key}: {type(node).__name__} '
                                  'is not executable here')
            out[key] = x
        x = out['output']
        y, head = running_aggregate(
            self.aggregation, x, {'sum': states[j], 'count': states[j + 1]})
        return [t.numpy() for t in [y] + new_states[:j] +
                [head['sum'], head['count']] +
                [spikes[key] for key in self.neurons]]
