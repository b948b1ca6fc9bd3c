"""NIR target: the Neuromorphic Intermediate Representation (HDF5).

Follows ``shared/NIR.md``: a BIDL LIF (leak alpha, beta = 0, v0 = 0, hard
reset) becomes ``nir.LIF`` with ``tau = dt / (1 - alpha)``, ``r = 1``,
``v_leak = 0``, ``v_reset = 0`` and ``v_threshold = theta * (1 - alpha)``
at ``dt = 1e-4`` (the membrane is scaled by ``1 - alpha``), which the
forward-Euler importers (snnTorch, Norse, Lava) reproduce spike for spike.
PLIF is a LIF with ``alpha = sigmoid(w)`` and maps the same way. IF
(``alpha = 1``, no leak) becomes ``nir.IF`` with ``r = 1/dt`` and
``v_threshold = theta``: forward Euler gives ``v += dt * r * I = I``, which
is BIDL's IF exactly; Norse (which ignores r and dt for IF and adds I)
reproduces it, snnTorch 1.0 cannot import ``nir.IF`` at all.
BatchNorm is already folded into the conv/linear by the lowering; average
pooling becomes ``SumPool2d`` with ``1/k^2`` folded into the next weighted
layer; ``Flatten.start_dim`` counts dims of the unbatched shape. The head's
temporal aggregation is not part of the graph: the graph outputs the
per-step logits and the caller aggregates them over time.

Everything NIR cannot express exactly is refused by layer name: other
neuron kinds, soft reset, BatchNorm on the membrane, analog output, beta or
v0 != 0, per-channel/per-neuron parameters, grouped or non-2D convs, max
pooling, activations.
"""
import os.path as osp

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.registry import DEPLOY_TARGETS
from .artefacts import write_initial_state, write_manifest
from .base import DeployTarget, Export, Runtime, UnsupportedFeature
from .nodes import (AggregateNode, LIFNode, ModuleNode, StatefulNode,
                    WeightedNode)

__all__ = ['NirTarget', 'NirRuntime', 'DT']

DT = 1e-4


def _nir():
    try:
        import nir
    except ImportError:
        raise ConfigError('the nir target needs the nir package: pip install '
                          'nir (or bidl-train[deploy])') from None
    return nir


def _uniform(t):
    return bool((t == t.flatten()[0]).all())


@DEPLOY_TARGETS.register_module(name='nir')
class NirTarget(DeployTarget):
    name = 'nir'
    description = ('Neuromorphic Intermediate Representation (HDF5) for '
                   'Loihi/Lava, SpiNNaker2, Speck, Xylo, snnTorch, Norse')
    precisions = ('fp32', )

    def check(self, lowered):
        layers = lowered.layers
        for i, layer in enumerate(layers):
            node, name = layer.node, layer.source
            refuse = lambda feature, hint='': (  # noqa: E731
                UnsupportedFeature('nir', name, feature, hint))
            if isinstance(node, LIFNode):
                if node.mode != 'spike':
                    raise refuse('analog (LIAF) output', 'NIR neurons spike')
                if node.norm is not None:
                    raise refuse('BatchNorm on the membrane (norm_state)')
                if node.reset != 'hard':
                    raise refuse('soft reset', 'importers reset to 0')
                if bool((node.beta != 0).any()):
                    raise refuse('beta != 0 (v_leak)')
                if bool((node.v0 != 0).any()):
                    raise refuse('v0 != 0 (v_reset)')
                if not (_uniform(node.theta) and _uniform(node.alpha)):
                    raise refuse('per-channel/per-neuron thresholds or '
                                 'leaks', 'use one alpha and theta per layer')
            elif isinstance(node, WeightedNode):
                if node.kind not in ('linear', 'conv2d'):
                    raise refuse(f'{node.kind} (only 2D convs)')
                if node.kind == 'conv2d' and node.groups != 1:
                    raise refuse('grouped convolution (groups='
                                 f'{node.groups})')
            elif isinstance(node, ModuleNode):
                module = node.module
                if isinstance(module, nn.AvgPool2d):
                    nxt = next((lay.node for lay in layers[i + 1:]
                                if not isinstance(lay.node, ModuleNode) or
                                not isinstance(lay.node.module, nn.Flatten)),
                               None)
                    if not isinstance(nxt, WeightedNode):
                        raise refuse('average pooling not followed by a '
                                     'conv/linear to fold its 1/k^2 into')
                elif not isinstance(module, nn.Flatten):
                    raise refuse(f'{type(module).__name__} (no exact NIR '
                                 'node; NIR has no max pooling)')
            elif isinstance(node, StatefulNode):
                raise refuse(
                    f'{type(node.module).__name__} (residual/branching '
                    'graph or embedding input: no exact NIR mapping is '
                    'exported)', 'use the onnx or torchscript target')
            elif isinstance(node, AggregateNode):
                if i != len(layers) - 1:
                    raise refuse('temporal aggregation inside the network')
            else:
                raise refuse(f'{type(node).__name__} (BatchNorm that could '
                             'not be folded into a conv/linear)')

    def export(self, step_net, x_seq, out_dir):
        nir = _nir()
        x = x_seq[0, :1].float()
        nodes, edges, prev = {}, [], 'input'
        nodes['input'] = nir.Input(input_type=np.array(x.shape[1:]))
        membranes, spike_names, pending_scale = [], [], 1.0
        with torch.no_grad():
            for i, node in enumerate(step_net.nodes):
                key = f'n{i}'
                y = x
                if isinstance(node, WeightedNode):
                    w = node.weight.numpy() * pending_scale
                    pending_scale = 1.0
                    b = node.bias.numpy()
                    y = node(x)
                    if node.kind == 'linear':
                        nodes[key] = nir.Affine(weight=w, bias=b)
                    else:
                        nodes[key] = nir.Conv2d(
                            input_shape=tuple(x.shape[2:]), weight=w,
                            stride=node.stride, padding=node.padding,
                            dilation=node.dilation, groups=node.groups,
                            bias=b)
                elif isinstance(node, LIFNode):
                    alpha = float(node.alpha.flatten()[0])
                    theta = float(node.theta.flatten()[0])
                    shape = tuple(x.shape[1:])
                    full = lambda v: np.full(shape, v,  # noqa: E731
                                             dtype=np.float32)
                    if alpha == 1.0:  # IF: v += dt * r * I with r = 1/dt
                        nodes[key] = nir.IF(r=full(1.0 / DT),
                                            v_threshold=full(theta),
                                            v_reset=full(0.0))
                    else:
                        nodes[key] = nir.LIF(
                            tau=full(DT / (1.0 - alpha)), r=full(1.0),
                            v_leak=full(0.0), v_threshold=full(
                                theta * (1.0 - alpha)), v_reset=full(0.0))
                    y = (x > 0).float()  # shape only
                    membranes.append((key, x[:1] * 0))
                    spike_names.append(key)
                elif isinstance(node.module if isinstance(
                        node, ModuleNode) else None, nn.AvgPool2d):
                    pool = node.module
                    k = _pair(pool.kernel_size)
                    nodes[key] = nir.SumPool2d(
                        kernel_size=np.array(k),
                        stride=np.array(_pair(pool.stride or k)),
                        padding=np.array(_pair(pool.padding)))
                    pending_scale = 1.0 / (k[0] * k[1])
                    y = node(x)
                elif isinstance(node, ModuleNode):  # Flatten
                    flat = node.module
                    end = flat.end_dim - 1 if flat.end_dim >= 0 else \
                        flat.end_dim
                    nodes[key] = nir.Flatten(
                        input_type={'input': np.array(x.shape[1:])},
                        start_dim=flat.start_dim - 1, end_dim=end)
                    y = node(x)
                else:  # the head's aggregation: outside the graph
                    continue
                edges.append((prev, key))
                prev, x = key, y
        nodes['output'] = nir.Output(output_type=np.array(x.shape[1:]))
        edges.append((prev, 'output'))
        graph = nir.NIRGraph(nodes=nodes, edges=edges)
        path = osp.join(out_dir, 'model.nir')
        nir.write(path, graph)
        state_names = [f'nir.{k}.v' for k, _ in membranes]
        aggregate = step_net.nodes[-1]
        agg_init = aggregate.init_state(x)
        files = dict(graph=path, initial_state=write_initial_state(
            out_dir, state_names + ['head.sum', 'head.count'],
            [m for _, m in membranes] + agg_init))
        files['manifest'] = write_manifest(
            out_dir, format='nir', dt=DT, file='model.nir',
            lif_mapping='tau = dt/(1-alpha), r = 1, v_leak = 0, v_reset = 0,'
            ' v_threshold = theta*(1-alpha)',
            if_mapping='IF (alpha = 1): r = 1/dt, v_threshold = theta, '
            'v_reset = 0',
            aggregation=aggregate.mode,
            note='the graph outputs per-step logits; aggregate them over '
            'time (mean/sum/last) outside the graph; feed one unbatched '
            'sample at a time when a Flatten follows a conv')
        names = state_names + ['head.sum', 'head.count']
        spikes = [step_net.spike_names[i] for i in range(len(spike_names))]
        return Export(files, ['x'] + names, ['y'] + names + spikes, names,
                      spikes, notes=[
                          f'NIR dt = {DT}; head aggregation '
                          f'({aggregate.mode}) outside the graph'],
                      compare_states=False)

    def load(self, export):
        return NirRuntime(export.files['graph'], DT)


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


class NirRuntime(Runtime):
    """Runs a ``.nir`` file as the forward-Euler importers do.

    Read back with ``nir.read`` (which re-checks shapes) and executed from
    the file alone, with no access to the PyTorch model: ``v = (1 - dt/tau)
    v + (dt/tau) (r I + v_leak)``, spike where ``v > v_threshold``, then
    ``v = v_reset``. The outputs follow the export: aggregated logits, the
    membranes, the running sum and count, then the spikes.
    """

    def __init__(self, path, dt):
        nir = _nir()
        self.graph = nir.read(path)
        self.dt = dt
        succ = dict(self.graph.edges)
        self.order, key = [], succ['input']
        while key != 'output':
            self.order.append(key)
            key = succ[key]

    @torch.no_grad()
    def step(self, x_t, states):
        import nir
        x = torch.from_numpy(np.asarray(x_t, dtype=np.float32))
        states = [torch.from_numpy(np.asarray(s, dtype=np.float32))
                  for s in states]
        new_states, spikes, j = [], [], 0
        for key in self.order:
            node = self.graph.nodes[key]
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
            elif isinstance(node, (nir.LIF, nir.IF)):
                p = {n: torch.from_numpy(np.asarray(getattr(node, n),
                                                    dtype=np.float32))
                     for n in ('tau', 'r', 'v_leak', 'v_threshold',
                               'v_reset') if hasattr(node, n)}
                if isinstance(node, nir.IF):  # dv/dt = r I
                    v = states[j] + (self.dt * p['r']) * x
                else:
                    k = self.dt / p['tau']
                    v = (1 - k) * states[j] + k * (p['r'] * x +
                                                   p['v_leak'])
                s = (v > p['v_threshold']).float()
                v = torch.where(s > 0, p['v_reset'].expand_as(v), v)
                new_states.append(v)
                spikes.append(s)
                x, j = s, j + 1
            else:
                raise ConfigError(f'NIR node {key}: {type(node).__name__} '
                                  'is not executable here')
        total, count = states[j] + x, states[j + 1] + 1
        return [t.numpy() for t in [total / count] + new_states +
                [total, count] + spikes]
