"""Building NIR graphs: neurons, folded conv+BatchNorm, residual backbones.

NIR is a graph, not a chain: a node with several incoming edges receives
the *sum* of their outputs (the NIR spec; nirtorch 2.6's interpreter adds
them with ``torch.add`` before calling the node). That is exactly how the
residual backbones join their branches, so they export without any
"add" node:

* ``ResNetLif`` block: ``SN2(BN2(conv2(SN1(BN1(conv1(x))))) + sc(x))``. The
  shortcut joins the membrane *input* of SN2, so SN2 gets two edges: one
  from conv2 (BN2 folded in) and one from the shortcut, which is the spike
  node that produced ``x`` (identity) or a 1x1 conv with its BatchNorm
  folded in. Bottleneck blocks likewise, with three convs. BIDL's shortcut
  (``shortcut='avgpool_conv'``: ``AvgPool2d(s) -> conv1x1 -> BN``) is a
  ``SumPool2d`` of s x s windows into that 1x1 conv, with the average's
  ``1/s^2`` folded into the conv's weight (not its bias). That is exact
  when s divides the map; on an odd map ``ceil_mode`` adds a partial last
  window, averaged over fewer pixels, which no scaled sum gives: refused,
  naming the pool, when the export sees such a map.
* ``SEWResNet`` block with the ``ADD`` connect function: the block output
  ``A + S`` is a sum of spike tensors that is never materialised; every
  consumer (the next block's conv1, its downsample conv, its identity
  shortcut, the final pooling) gets one edge per spike node in the sum.
  ``AND``/``IAND`` multiply spikes and have no NIR form (refused).
* The backbone's global average pooling is a ``SumPool2d`` over the whole
  map with ``1/(H W)`` folded into the next weighted layer (the head's
  linear readout).

Every neuron follows the mapping of :mod:`.nir` (``shared/NIR.md``): the
membrane is scaled by ``1 - alpha``, which commutes with summing the input
currents. BatchNorm (eval mode, running statistics) is folded into the conv
before it: ``w' = w * g / sqrt(var + eps)``, ``b' = (b - mean) * g /
sqrt(var + eps) + beta``. A conv bias ``b`` (``conv_bias=True``) enters that
fold; without one ``b = 0``.

``CubaLIF`` neurons map to NIR's ``CubaLIF`` with the parameters of
:meth:`~bidl_train.neurons.CubaLIF.nir_parameters` at the export ``dt``.
"""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.models.backbones import ResNetLif, SEWResNet
from bidl_train.models.backbones.resnet_lif import (BasicBlockLif,
                                                    BottleneckLif)
from bidl_train.models.backbones.sew_resnet import SEWBlock
from bidl_train.neurons import CubaLIF
from .base import UnsupportedFeature
from .nodes import LIFNode

__all__ = ['DT', 'load_nir', 'GraphBuilder', 'cuba_of', 'check_neuron',
           'check_residual', 'add_residual']

#: the export's time step: snnTorch 1.0 hard-codes 1e-4 (shared/NIR.md)
DT = 1e-4


def load_nir():
    try:
        import nir
    except ImportError:
        raise ConfigError('the nir target needs the nir package: pip install '
                          'nir (or bidl-train[deploy])') from None
    return nir


def _uniform(t):
    return bool((t == t.flatten()[0]).all())


def _refuser(layer):
    return lambda feature, hint='': UnsupportedFeature('nir', layer, feature,
                                                       hint)


# -- neurons ---------------------------------------------------------------
def cuba_of(node):
    """The CubaLIF neuron a lowered node runs (the lowering wraps every
    non-LIF neuron kind in a node holding a plain copy as ``.neuron``), or
    None."""
    neuron = getattr(node, 'neuron', None)
    return neuron if type(neuron) is CubaLIF else None


def check_neuron(node, layer):
    """Refuse a lowered neuron node NIR cannot express exactly: only BIDL's
    LIF family (LIF, IF, PLIF as :class:`LIFNode`) and CubaLIF map; every
    other kind (ALIF, LIFPlus, Izhikevich, ...) is refused by name."""
    if type(node) is LIFNode:
        check_lif(node, layer)
    elif cuba_of(node) is not None:
        check_cuba(node.neuron, layer)
    else:
        kind = type(getattr(node, 'neuron', node)).__name__
        raise UnsupportedFeature(
            'nir', layer, f'{kind} neuron (no exact NIR neuron: NIR has LIF,'
            ' IF and CubaLIF)')


def _check_reset_and_output(n, refuse):
    """What NIR's LIF and CubaLIF both need (``n``: a lowered LIF node or a
    neuron module; both carry these attributes): spikes out, hard reset to
    0, no leak towards a rest potential, no membrane BatchNorm."""
    if n.mode != 'spike':
        raise refuse('analog (LIAF) output', 'NIR neurons spike')
    if n.norm is not None:
        raise refuse('BatchNorm on the membrane (norm_state)')
    if n.reset != 'hard':
        raise refuse('soft reset', 'importers reset to 0')
    if bool((n.beta != 0).any()):
        raise refuse('beta != 0 (v_leak)')
    if bool((n.v0 != 0).any()):
        raise refuse('v0 != 0 (v_reset)')


def check_lif(node, layer):
    """Refuse (by ``layer``) a lowered LIF outside NIR's exact subset."""
    refuse = _refuser(layer)
    _check_reset_and_output(node, refuse)
    if not (_uniform(node.theta) and _uniform(node.alpha)):
        raise refuse('per-channel/per-neuron thresholds or leaks',
                     'use one alpha and theta per layer')


def check_cuba(neuron, layer):
    """Refuse (by ``layer``) a CubaLIF neuron outside the exact subset.

    The importers need what the LIF needs, one threshold and (snnTorch)
    one synaptic and one membrane decay per layer, and finite time
    constants (``alpha, alpha_syn < 1``).
    """
    refuse = _refuser(layer)
    _check_reset_and_output(neuron, refuse)
    alpha = neuron.leak_factor().detach()
    if not (_uniform(neuron.theta) and _uniform(alpha) and
            _uniform(neuron.alpha_syn)):
        raise refuse('per-channel/per-neuron thresholds or decays',
                     'use one alpha, alpha_syn and theta per layer')
    if bool((alpha >= 1).any()) or bool((neuron.alpha_syn >= 1).any()):
        raise refuse('alpha or alpha_syn = 1 (infinite NIR time constant)')


def _full(shape, value):
    return np.full(shape, float(value), dtype=np.float32)


def lif_to_nir(node, shape):
    """``nir.LIF`` (or ``nir.IF`` for alpha = 1) of a checked LIF node."""
    nir = load_nir()
    alpha = float(node.alpha.flatten()[0])
    theta = float(node.theta.flatten()[0])
    if alpha == 1.0:  # IF: v += dt * r * I with r = 1/dt
        return nir.IF(r=_full(shape, 1.0 / DT), v_threshold=_full(
            shape, theta), v_reset=_full(shape, 0.0))
    return nir.LIF(tau=_full(shape, DT / (1.0 - alpha)), r=_full(shape, 1.0),
                   v_leak=_full(shape, 0.0),
                   v_threshold=_full(shape, theta * (1.0 - alpha)),
                   v_reset=_full(shape, 0.0))


def cuba_to_nir(neuron, shape):
    """``nir.CubaLIF`` of a checked CubaLIF neuron (forward Euler at DT).

    With ``w_in = tau_syn/dt`` and ``r = tau_mem/dt`` one Euler step is
    ``I = alpha_syn I + x`` and ``v = alpha v + I``: the neuron's own
    synaptic current and pre-reset potential, unscaled.
    """
    nir = load_nir()
    p = neuron.nir_parameters(DT)
    return nir.CubaLIF(**{name: _full(shape, value.flatten()[0])
                          for name, value in p.items()})


# -- graph -----------------------------------------------------------------
class GraphBuilder:
    """NIR nodes and edges, plus the neurons in state/spike order.

    A node's input is a list of source keys (the node receives the sum
    of their outputs) plus an example value of that input, of which only
    the shape matters; the methods return the node's key as a one-element
    source list and an example output, so branches compose by list
    concatenation.
    """

    def __init__(self, x):
        self.nir = load_nir()
        self.nodes = {'input': self.nir.Input(input_type=np.array(
            x.shape[1:]))}
        self.edges = []
        #: ``[(key, kind, state names)]`` in the model's spike order
        self.neurons = []

    def add(self, key, node, sources):
        if key in self.nodes:
            raise RuntimeError(f'NIR node {key} added twice')
        if len(set(sources)) != len(sources):  # snnTorch drops duplicates
            raise RuntimeError(f'NIR node {key}: duplicate sources {sources}')
        self.nodes[key] = node
        self.edges.extend((src, key) for src in sources)
        return [key]

    def conv(self, key, weight, bias, conv, sources, x):
        """A 2D conv with explicit (folded) weight and bias; ``conv`` gives
        stride, padding, dilation and groups."""
        node = self.nir.Conv2d(
            input_shape=tuple(x.shape[2:]), weight=weight.numpy(),
            stride=conv.stride, padding=conv.padding,
            dilation=conv.dilation, groups=conv.groups, bias=bias.numpy())
        y = F.conv2d(x, weight, bias, conv.stride, conv.padding,
                     conv.dilation, conv.groups)
        return self.add(key, node, sources), y

    def neuron(self, key, node, sources, x):
        """A checked lowered neuron node (LIF family or CubaLIF)."""
        shape = tuple(x.shape[1:])
        if cuba_of(node) is not None:
            self.add(key, cuba_to_nir(node.neuron, shape), sources)
            self.neurons.append((key, 'CubaLIF', tuple(
                node.neuron.state_names)))  # ('i', 'v')
        else:
            self.add(key, lif_to_nir(node, shape), sources)
            self.neurons.append((key, 'LIF', ('v', )))
        return [key], torch.zeros_like(x)

    def sum_pool(self, key, kernel, stride, padding, sources, x):
        node = self.nir.SumPool2d(kernel_size=np.array(kernel),
                                  stride=np.array(stride),
                                  padding=np.array(padding))
        y = F.avg_pool2d(x, kernel, stride, padding)
        return self.add(key, node, sources), y

    def graph(self, sources, x):
        """The finished graph, its output the sum of ``sources``."""
        self.add('output', self.nir.Output(output_type=np.array(
            x.shape[1:])), sources)
        return self.nir.NIRGraph(nodes=self.nodes, edges=self.edges)


def fold_batchnorm(conv, bn):
    """Weight and bias of ``bn(conv(x))`` as one conv (eval mode)."""
    scale = (bn.running_var + bn.eps).rsqrt()
    shift = -bn.running_mean * scale
    if bn.affine:
        scale, shift = scale * bn.weight, shift * bn.weight + bn.bias
    bias = (torch.zeros_like(scale) if conv.bias is None else conv.bias)
    weight = conv.weight * scale.reshape(-1, 1, 1, 1)
    return weight.detach(), (bias * scale + shift).detach()


# -- residual backbones ----------------------------------------------------
def _blocks(module):
    for i, stage in enumerate(module.stages):
        for j, block in enumerate(stage):
            yield f'stages.{i}.{j}', block


def check_residual(node, source):
    """Refuse what a ResNetLif/SEWResNet (lowered as the StatefulNode
    ``node`` from layer ``source``) has outside the exact NIR subset."""
    module = node.module
    name = type(module).__name__
    if type(module) not in (ResNetLif, SEWResNet):
        raise UnsupportedFeature(
            'nir', source, f'{name} (only the branching backbones ResNetLif '
            'and SEWResNet have an NIR mapping)',
            'use the onnx or torchscript target')
    if module.stem.pool is not None:
        raise UnsupportedFeature(
            'nir', f'{source}.stem.pool', 'MaxPool2d (NIR has no max '
            'pooling)', "use stem='cifar'")
    for path, sub in module.named_modules(prefix=source):
        if isinstance(sub, nn.BatchNorm2d) and sub.running_mean is None:
            raise UnsupportedFeature(
                'nir', path, 'BatchNorm without running statistics (cannot '
                'be folded into the conv)')
        if isinstance(sub, nn.Conv2d) and (sub.groups != 1 or
                                           sub.padding_mode != 'zeros'):
            raise UnsupportedFeature(
                'nir', path, f'grouped or non-zero-padded convolution '
                f'(groups={sub.groups}, padding_mode={sub.padding_mode!r})')
    for key, block in _blocks(module):
        layer = f'{source}.{key}'
        if type(block) not in (BasicBlockLif, BottleneckLif, SEWBlock):
            raise UnsupportedFeature('nir', layer, f'{type(block).__name__} '
                                     '(unknown residual block)')
        if isinstance(block, SEWBlock) and block.cnf != 'ADD':
            raise UnsupportedFeature(
                'nir', layer, f'SEW connect function {block.cnf} (a product '
                'of spikes; NIR nodes only sum their inputs)',
                "use cnf='ADD'")
        for sn in ('sn1', 'sn2', 'sn3'):
            act = getattr(block, sn, None)
            if act is not None and not getattr(act, 'spiking', True):
                raise UnsupportedFeature(
                    'nir', f'{layer}.{sn}', 'ReLU in place of a neuron '
                    '(lite=True: analog activations)')
    for key, neuron in zip(node.keys, node.neurons):
        check_neuron(neuron, f'{source}.{key}')


def add_residual(g, node, prefix, sources, x):
    """Add a checked ResNetLif/SEWResNet StatefulNode to builder ``g``.

    ``sources``/``x``: the backbone's input edges and example input.
    Returns the output sources (the spike nodes summed by the global
    pooling's input), the example output ``[1, C, 1, 1]`` and the ``1/(H
    W)`` the next weighted layer must fold in.
    """
    module = node.module
    nir = g.nir
    fired = {}
    # the backbone's layer name, for a refusal: the module path of its
    # first neuron (the stem's) less the neuron's context key
    layer = node.neuron_names[0][:-len(node.keys[0]) - 1]
    start = len(g.neurons)

    def key_of(path):
        return f'{prefix}_{path}'.replace('.', '_')

    def conv_bn(path, conv, bn, srcs, x):
        w, b = fold_batchnorm(conv, bn)
        return g.conv(key_of(path), w, b, conv, srcs, x)

    def avgpool_conv(scope, shortcut, srcs, x):
        pool, conv, bn = shortcut
        w, b = fold_batchnorm(conv, bn)
        if isinstance(pool, nn.AvgPool2d):  # kernel = stride, no padding
            k, (h, w_in) = pool.kernel_size, x.shape[2:]
            if h % k or w_in % k:
                raise UnsupportedFeature(
                    'nir', f'{layer}.{scope}.shortcut.0', f'average pooling '
                    f'of a {h}x{w_in} map in {k}x{k} windows (ceil_mode: a '
                    'partial last window, averaged over fewer pixels, is '
                    'no scaled SumPool2d)', 'use an input size whose '
                    'downsampled maps all divide by the stride')
            srcs, x = g.sum_pool(key_of(f'{scope}.shortcut.0'), (k, k),
                                 (k, k), (0, 0), srcs, x)
            w = w / (k * k)  # the average = the sum / k^2
        return g.conv(key_of(f'{scope}.shortcut.1'), w, b, conv, srcs, x)

    def fire(ctx_key, srcs, x):
        lif = node.neurons[node.index[ctx_key]]
        fired[ctx_key] = len(g.neurons)
        return g.neuron(key_of(ctx_key), lif, srcs, x)

    with torch.no_grad():
        stem = module.stem
        srcs, x = conv_bn('stem.conv', stem.conv, stem.bn, sources, x)
        srcs, x = fire('stem.sn', srcs, x)
        for scope, block in _blocks(module):
            if isinstance(block, SEWBlock):
                a, y = conv_bn(f'{scope}.conv1', block.conv1, block.bn1,
                               srcs, x)
                a, y = fire(f'{scope}.sn1', a, y)
                a, y = conv_bn(f'{scope}.conv2', block.conv2, block.bn2, a,
                               y)
                a, y = fire(f'{scope}.sn2', a, y)
                if block.downsample is not None:
                    conv, bn = block.downsample
                    s, ys = conv_bn(f'{scope}.downsample.0', conv, bn, srcs,
                                    x)
                    srcs, _ = fire(f'{scope}.sn_down', s, ys)
                # ADD: the block output is the sum of both spike sources
                srcs, x = a + srcs, y
                continue
            convs = [(block.conv1, block.bn1), (block.conv2, block.bn2)]
            if isinstance(block, BottleneckLif):
                convs.append((block.conv3, block.bn3))
            out, y = srcs, x
            for k, (conv, bn) in enumerate(convs, 1):
                out, y = conv_bn(f'{scope}.conv{k}', conv, bn, out, y)
                if k < len(convs):
                    out, y = fire(f'{scope}.sn{k}', out, y)
            if block.shortcut is None:
                short = srcs
            elif len(block.shortcut) == 2:  # 'conv': strided 1x1 conv, BN
                conv, bn = block.shortcut
                short, _ = conv_bn(f'{scope}.shortcut.0', conv, bn, srcs, x)
            else:  # 'avgpool_conv': pool (or identity), 1x1 conv, BN
                short, _ = avgpool_conv(scope, block.shortcut, srcs, x)
            # the shortcut joins the last neuron's input current
            srcs, x = fire(f'{scope}.sn{len(convs)}', out + short, y)
        kernel = tuple(x.shape[2:])
        srcs, x = g.sum_pool(key_of('pool'), kernel, kernel, (0, 0), srcs,
                             x)
    if sorted(fired) != sorted(node.keys):
        raise RuntimeError(f'{prefix}: NIR neurons {sorted(fired)} differ '
                           f'from the lowered ones {sorted(node.keys)}')
    # state/spike order: the lowered node's firing order
    mine = g.neurons[start:]
    g.neurons[start:] = [mine[fired[k] - start] for k in node.keys]
    return srcs, x, 1.0 / (kernel[0] * kernel[1])
