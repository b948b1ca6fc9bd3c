"""Building NIR graphs: neurons, folded conv+BatchNorm, branching backbones.

NIR is a graph, not a chain: a node with several incoming edges receives
the *sum* of their outputs (the NIR spec; nirtorch 2.6's interpreter adds
them with ``torch.add`` before calling the node). That is how branching
backbones join their branches, with no "add" node. A branching backbone
and each module inside it (stem, blocks) has an entry in
:data:`NIR_LOWERINGS` with its ``check`` (what NIR cannot express, refused
by layer name) and ``build`` (its nodes and edges, through a
:class:`StatefulGraph`); ResNetLif's and SEWResNet's live in
:mod:`.lowerings.resnet` and :mod:`.lowerings.sew_resnet`, and a backbone
with no entry is refused by name.

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
from bidl_train.neurons import CubaLIF
from .base import UnsupportedFeature
from .blockers import refusals
from .lower import Lowerings, batchnorm_affine
from .nodes import LIFNode

__all__ = ['DT', 'load_nir', 'GraphBuilder', 'cuba_of', 'check_neuron',
           'check_membrane_lif', 'membrane_affine', 'membrane_decay',
           'NIR_LOWERINGS', 'StatefulGraph', 'check_stateful',
           'check_part', 'check_convs_and_batchnorms', 'add_stateful',
           'fold_batchnorm']

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


def check_neuron(node, layer, membrane_bn=False):
    """Refuse a lowered neuron node NIR cannot express exactly: only BIDL's
    LIF family (LIF, IF, PLIF as :class:`LIFNode`) and CubaLIF map; every
    other kind (ALIF, LIFPlus, Izhikevich, ...) is refused by name.

    ``membrane_bn``: a LIF with BatchNorm on its membrane may map (its
    caller folds the BatchNorm's scale into the conv/linear right before
    it, see :func:`check_membrane_lif`); inside a branching backbone it is
    refused."""
    if type(node) is LIFNode and node.norm is not None:
        if not membrane_bn:
            raise _refuser(layer)(
                'BatchNorm on the membrane (norm_state) inside a branching '
                'backbone', 'exported in chains of layers (ConvLifNet), where '
                'a conv/linear directly before the neuron takes its scale')
        check_membrane_lif(node, layer)
    elif type(node) is LIFNode:
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


# -- LIF with BatchNorm on the membrane (BIDL's norm_state) ----------------
# BIDL's step with the membrane BatchNorm at inference, per channel c:
#   u_t = a_c (x_t + v_{t-1}) + b_c,  s_t = u_t > theta,
#   r_t = (1 - s_t) u_t (hard reset to v0 = 0),  v_t = alpha r_t (beta = 0)
# so u_t = (a_c alpha) r_{t-1} + (a_c x_t + b_c): a LIF on u with leak
# d_c = a_c alpha, threshold theta, reset to 0, driven by the current
# I_t = a_c x_t + b_c, which is the conv/linear before the neuron with a_c
# folded into its weight and a_c bias + b_c as its bias. u_0 = a_c x_0 +
# b_c needs the importers' zero start, so beta and v0 must be 0 (a reset
# potential v0 != 0 or a constant beta shifts u by a constant that the
# zero initial state does not have).
#
# d_c differs per channel, and the two importers disagree on nir.LIF with
# per-neuron time constants (snnTorch 1.0 wants r dt/tau uniform and one
# threshold; Norse 1.1 ignores r), so the neuron is written as nir.CubaLIF
# with an instantaneous synapse, which both run exactly as
#   I = x (tau_syn = dt: the synaptic current follows the input in one
#   step; w_in = 1),  v = (1 - dt/tau_mem) v + (dt/tau_mem) r I
# with tau_mem = dt/(1 - d_c) and r = tau_mem/dt: v = d_c v + I, spike if
# v > theta, v = 0. That is u itself, unscaled: one threshold per layer.
def membrane_affine(node):
    """``(a, b)`` per channel of a LIF node's membrane BatchNorm (eval
    mode: ``BN(u) = a u + b``), as 1-D tensors."""
    return node.norm.scale.flatten(), node.norm.shift.flatten()


def membrane_decay(node):
    """The leak ``d = a * alpha`` of a LIF with membrane BatchNorm, in the
    shape of its parameters (channel first, broadcasting over the feature
    shape)."""
    a, _ = membrane_affine(node)
    dims = len(node.feature_shape)  # channel first
    return a.reshape((-1, ) + (1, ) * (dims - 1)) * node.alpha.float()


def check_membrane_lif(node, layer):
    """Refuse (by ``layer`` and channel) a LIF with membrane BatchNorm that
    has no exact NIR form: analog output, soft reset, ``beta``/``v0`` != 0,
    per-channel thresholds, or a leak ``a * alpha`` outside ``[0, 1)``."""
    refuse = _refuser(layer)
    if node.mode != 'spike':
        raise refuse('analog (LIAF) output', 'NIR neurons spike')
    if node.reset != 'hard':
        raise refuse('soft reset with membrane BatchNorm', 'importers reset '
                     'to 0')
    if bool((node.beta != 0).any()):
        raise refuse('beta != 0 with membrane BatchNorm (the importers start'
                     ' from 0, BIDL from v = 0 without the beta)')
    if bool((node.v0 != 0).any()):
        raise refuse('v0 != 0 with membrane BatchNorm (importers reset to 0)')
    if not _uniform(node.theta):
        raise refuse('per-channel/per-neuron thresholds',
                     'use one theta per layer')
    d = membrane_decay(node)
    bad = (d < 0) | (d >= 1) | ~torch.isfinite(d)
    if bool(bad.any()):
        rows = bad.reshape(bad.shape[0], -1)
        channel = int(rows.any(1).nonzero()[0])
        a, _ = membrane_affine(node)
        value = float(d.reshape(d.shape[0], -1)[channel][rows[channel]][0])
        raise refuse(
            f'membrane BatchNorm (norm_state) channel {channel}: leak a * '
            f'alpha = {value:.6g} (a = {float(a[channel]):.6g}) outside '
            '[0, 1), which no NIR neuron has',
            'a < 0 comes from a negative BatchNorm weight, a * alpha >= 1 '
            'from a BatchNorm that amplifies the membrane; train with '
            'norm_state=False for this layer')


def membrane_lif_to_nir(node, shape):
    """``nir.CubaLIF`` (instantaneous synapse) of a checked LIF with
    membrane BatchNorm whose ``a`` is folded into the weights before it."""
    nir = load_nir()
    d = membrane_decay(node).double().expand(shape).numpy()
    tau_mem = (DT / (1.0 - d)).astype(np.float32)
    theta = float(node.theta.flatten()[0])
    return nir.CubaLIF(tau_syn=_full(shape, DT), tau_mem=tau_mem,
                       r=(tau_mem / DT).astype(np.float32),
                       v_leak=_full(shape, 0.0), v_threshold=_full(
                           shape, theta), v_reset=_full(shape, 0.0),
                       w_in=_full(shape, 1.0))


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
        elif node.norm is not None:  # LIF with membrane BatchNorm
            self.add(key, membrane_lif_to_nir(node, shape), sources)
            self.neurons.append((key, 'CubaLIF', ('i', 'v')))
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
    scale, shift = batchnorm_affine(bn)
    bias = (torch.zeros_like(scale) if conv.bias is None else conv.bias)
    weight = conv.weight * scale.reshape(-1, 1, 1, 1)
    return weight.detach(), (bias * scale + shift).detach()


# -- branching backbones ---------------------------------------------------
#: NIR graphs of the modules inside a branching backbone's StatefulNode (the
#: backbone and its parts: stem, blocks), exact by class. An entry is a
#: class (or object) with ``check(module, layer)``, which raises
#: UnsupportedFeature for what NIR cannot express, and ``build(graph,
#: module, scope, sources, x) -> (sources, x)``, which adds the module's
#: nodes through ``graph`` (a :class:`StatefulGraph`).
NIR_LOWERINGS = Lowerings(
    'NIR_LOWERINGS', '', 'a class with check(module, layer) and '
    'build(graph, module, scope, sources, x)', exact=True)


def join(scope, name):
    """The context key or module path ``name`` inside ``scope``."""
    return f'{scope}.{name}' if scope else name


def check_part(module, layer):
    """Run the NIR check of ``module`` (at path ``layer``); a class with no
    NIR lowering is refused by name."""
    with refusals(layer):  # collecting mode: record, go on
        lowering = NIR_LOWERINGS.get(module)
        if lowering is None:
            raise UnsupportedFeature('nir', layer,
                                     NIR_LOWERINGS.missing(module),
                                     'use the onnx or torchscript target')
        lowering.check(module, layer)


def check_convs_and_batchnorms(module, source):
    """Refuse what :meth:`StatefulGraph.conv_bn` cannot fold: a BatchNorm
    without running statistics, a grouped or non-zero-padded conv."""
    for path, sub in module.named_modules(prefix=source):
        with refusals(path):  # collecting mode: record, go on
            _check_conv_or_batchnorm(sub, path)


def _check_conv_or_batchnorm(sub, path):
    if isinstance(sub, nn.BatchNorm2d) and sub.running_mean is None:
        raise UnsupportedFeature(
            'nir', path, 'BatchNorm without running statistics (cannot '
            'be folded into the conv)')
    if isinstance(sub, nn.Conv2d) and (sub.groups != 1 or
                                       sub.padding_mode != 'zeros'):
        raise UnsupportedFeature(
            'nir', path, f'grouped or non-zero-padded convolution '
            f'(groups={sub.groups}, padding_mode={sub.padding_mode!r})')


def check_stateful(node, source):
    """Refuse what a branching backbone (lowered as the StatefulNode
    ``node`` from layer ``source``) has outside the exact NIR subset: its
    own NIR lowering's check, then every neuron's."""
    check_part(node.module, source)
    for key, neuron in zip(node.keys, node.neurons):
        with refusals(f'{source}.{key}'):  # collecting mode: record, go on
            check_neuron(neuron, f'{source}.{key}')


class StatefulGraph:
    """Builds the NIR graph of one StatefulNode into a :class:`GraphBuilder`.

    The NIR lowerings of the backbone and its parts call these with paths
    relative to the backbone (``stages.0.0.conv1``) and the neurons' context
    keys (``stages.0.0.sn1``); node keys get the StatefulNode's ``prefix``.
    """

    def __init__(self, g, node, prefix, source):
        self.g, self.node, self.prefix, self.source = g, node, prefix, source
        self.nir = g.nir
        #: the factor the next weighted layer must fold in (a sum pooling
        #: standing for an average sets it)
        self.scale = 1.0
        self._fired = {}
        self._start = len(g.neurons)

    def key(self, path):
        return f'{self.prefix}_{path}'.replace('.', '_')

    def layer(self, path):
        """The model path of ``path`` (for a refusal)."""
        return join(self.source, path)

    def part(self, module, scope, sources, x):
        """Add ``module`` (at ``scope``) by its NIR lowering."""
        return NIR_LOWERINGS.get(module).build(self, module, scope, sources,
                                               x)

    def conv(self, path, weight, bias, conv, sources, x):
        return self.g.conv(self.key(path), weight, bias, conv, sources, x)

    def conv_bn(self, path, conv, bn, sources, x):
        """``bn(conv(x))`` as one conv, BatchNorm folded in."""
        weight, bias = fold_batchnorm(conv, bn)
        return self.conv(path, weight, bias, conv, sources, x)

    def sum_pool(self, path, kernel, stride, sources, x):
        return self.g.sum_pool(self.key(path), kernel, stride, (0, 0),
                               sources, x)

    def fire(self, ctx_key, sources, x):
        """The lowered neuron of context key ``ctx_key``."""
        neuron = self.node.neurons[self.node.index[ctx_key]]
        self._fired[ctx_key] = len(self.g.neurons)
        return self.g.neuron(self.key(ctx_key), neuron, sources, x)

    def finish(self):
        """Check every lowered neuron was added once; put the neurons in
        the lowered node's firing order (its state/spike order)."""
        keys = self.node.keys
        if sorted(self._fired) != sorted(keys):
            raise RuntimeError(f'{self.prefix}: NIR neurons '
                               f'{sorted(self._fired)} differ from the '
                               f'lowered ones {sorted(keys)}')
        start, neurons = self._start, self.g.neurons
        mine = neurons[start:]
        neurons[start:] = [mine[self._fired[k] - start] for k in keys]


def add_stateful(g, node, prefix, source, sources, x):
    """Add a checked StatefulNode (from layer ``source``) to builder ``g``.

    ``sources``/``x``: its input edges and example input. Returns the
    output sources, the example output and the factor the next weighted
    layer must fold in (a global average pooling's ``1/(H W)``).
    """
    graph = StatefulGraph(g, node, prefix, source)
    with torch.no_grad():
        sources, x = graph.part(node.module, '', sources, x)
    graph.finish()
    return sources, x, graph.scale
