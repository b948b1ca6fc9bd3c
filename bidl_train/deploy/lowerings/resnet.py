"""``ResNetLif``: traced for ONNX/TorchScript, a summing graph for NIR.

ONNX and TorchScript run the backbone's own ``compute`` in one
:class:`~..nodes.StatefulNode` (:meth:`~..lower.Lowerer.stateful`).

NIR is a graph, not a chain: a node with several incoming edges receives
the *sum* of their outputs (the NIR spec; nirtorch 2.6's interpreter adds
them with ``torch.add`` before calling the node), which is how the blocks
join their branches, with no "add" node:

* block ``SN2(BN2(conv2(SN1(BN1(conv1(x))))) + sc(x))``: the shortcut joins
  the membrane *input* of SN2, so SN2 gets two edges: one from conv2 (BN2
  folded in) and one from the shortcut, which is the spike node that
  produced ``x`` (identity) or a 1x1 conv with its BatchNorm folded in.
  Bottleneck blocks likewise, with three convs. BIDL's shortcut
  (``shortcut='avgpool_conv'``: ``AvgPool2d(s) -> conv1x1 -> BN``) is a
  ``SumPool2d`` of s x s windows into that 1x1 conv, with the average's
  ``1/s^2`` folded into the conv's weight (not its bias). That is exact
  when s divides the map; on an odd map ``ceil_mode`` adds a partial last
  window, averaged over fewer pixels, which no scaled sum gives: refused,
  naming the pool, when the export sees such a map.
* the backbone's global average pooling is a ``SumPool2d`` over the whole
  map with ``1/(H W)`` folded into the next weighted layer (the head's
  linear readout).

The stem (shared with ``SEWResNet``) is conv + BN into a neuron; the
ImageNet stem's max pooling has no NIR node (refused). ``lite=True``
blocks (ReLU in place of neurons) are refused.
"""
from torch import nn

from bidl_train.models.backbones import ResNetLif
from bidl_train.models.backbones.resnet_lif import (BasicBlockLif,
                                                    BottleneckLif, _Stem)
from ..base import UnsupportedFeature
from ..lower import LAYER_LOWERINGS
from ..nir_graph import (NIR_LOWERINGS, check_convs_and_batchnorms,
                         check_part, fold_batchnorm, join)


@LAYER_LOWERINGS.register(ResNetLif)
def lower_resnet(lowerer, module, source, state_path):
    lowerer.stateful(module, source, state_path)


def _parts(backbone):
    """``(scope, module)`` of the stem and of every block, in order."""
    yield 'stem', backbone.stem
    for i, stage in enumerate(backbone.stages):
        for j, block in enumerate(stage):
            yield f'stages.{i}.{j}', block


@NIR_LOWERINGS.register(ResNetLif)
class ResidualBackboneGraph:
    """Stem, blocks in order, global average pooling (a sum pooling whose
    ``1/(H W)`` the next weighted layer folds in). ``SEWResNet`` has the
    same layout and registers this too."""

    @staticmethod
    def check(backbone, layer):
        check_convs_and_batchnorms(backbone, layer)
        for scope, part in _parts(backbone):
            check_part(part, join(layer, scope))

    @staticmethod
    def build(graph, backbone, scope, sources, x):
        for path, part in _parts(backbone):
            sources, x = graph.part(part, join(scope, path), sources, x)
        kernel = tuple(x.shape[2:])
        sources, x = graph.sum_pool(join(scope, 'pool'), kernel, kernel,
                                    sources, x)
        graph.scale = 1.0 / (kernel[0] * kernel[1])
        return sources, x


@NIR_LOWERINGS.register(_Stem)
class StemGraph:

    @staticmethod
    def check(stem, layer):
        if stem.pool is not None:
            raise UnsupportedFeature(
                'nir', f'{layer}.pool', 'MaxPool2d (NIR has no max '
                'pooling)', "use stem='cifar'")

    @staticmethod
    def build(graph, stem, scope, sources, x):
        sources, x = graph.conv_bn(join(scope, 'conv'), stem.conv, stem.bn,
                                   sources, x)
        return graph.fire(join(scope, 'sn'), sources, x)


@NIR_LOWERINGS.register(BasicBlockLif, BottleneckLif)
class ResidualBlockGraph:
    """conv+BN and a neuron per stage of the block; the last neuron sums
    the main branch and the shortcut."""

    @staticmethod
    def check(block, layer):
        for sn in ('sn1', 'sn2', 'sn3'):
            act = getattr(block, sn, None)
            if act is not None and not getattr(act, 'spiking', True):
                raise UnsupportedFeature(
                    'nir', f'{layer}.{sn}', 'ReLU in place of a neuron '
                    '(lite=True: analog activations)')

    @staticmethod
    def build(graph, block, scope, sources, x):
        convs = [(block.conv1, block.bn1), (block.conv2, block.bn2)]
        if isinstance(block, BottleneckLif):
            convs.append((block.conv3, block.bn3))
        out, y = sources, x
        for k, (conv, bn) in enumerate(convs, 1):
            out, y = graph.conv_bn(join(scope, f'conv{k}'), conv, bn, out, y)
            if k < len(convs):
                out, y = graph.fire(join(scope, f'sn{k}'), out, y)
        if block.shortcut is None:
            short = sources
        elif len(block.shortcut) == 2:  # 'conv': strided 1x1 conv, BN
            conv, bn = block.shortcut
            short, _ = graph.conv_bn(join(scope, 'shortcut.0'), conv, bn,
                                     sources, x)
        else:  # 'avgpool_conv': pool (or identity), 1x1 conv, BN
            short = _avgpool_conv(graph, scope, block.shortcut, sources, x)
        # the shortcut joins the last neuron's input current
        return graph.fire(join(scope, f'sn{len(convs)}'), out + short, y)


def _avgpool_conv(graph, scope, shortcut, sources, x):
    """BIDL's shortcut: a sum pooling into the 1x1 conv with the average's
    ``1/k^2`` folded into the conv's weight (BN folded too)."""
    pool, conv, bn = shortcut
    path = join(scope, 'shortcut.0')
    weight, bias = fold_batchnorm(conv, bn)
    if isinstance(pool, nn.AvgPool2d):  # kernel = stride, no padding
        k, (h, w) = pool.kernel_size, x.shape[2:]
        if h % k or w % k:
            raise UnsupportedFeature(
                'nir', graph.layer(path), f'average pooling of a {h}x{w} '
                f'map in {k}x{k} windows (ceil_mode: a partial last window,'
                ' averaged over fewer pixels, is no scaled SumPool2d)',
                'use an input size whose downsampled maps all divide by the'
                ' stride')
        sources, x = graph.sum_pool(path, (k, k), (k, k), sources, x)
        weight = weight / (k * k)  # the average = the sum / k^2
    sources, _ = graph.conv(join(scope, 'shortcut.1'), weight, bias, conv,
                            sources, x)
    return sources
