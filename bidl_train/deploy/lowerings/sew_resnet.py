"""``SEWResNet``: traced for ONNX/TorchScript, a summing graph for NIR.

The layout (stem, stages of blocks, global average pooling) is
``ResNetLif``'s, and so is its NIR graph (:mod:`.resnet`). A ``SEWBlock``
with the ``ADD`` connect function outputs ``A + S``, a sum of spike tensors
that is never materialised: every consumer (the next block's conv1, its
downsample conv, its identity shortcut, the final pooling) gets one edge
per spike node in the sum (an NIR node receives the sum of its inputs).
``AND``/``IAND`` multiply spikes and have no NIR form (refused).
"""
from bidl_train.models.backbones import SEWResNet
from bidl_train.models.backbones.sew_resnet import SEWBlock
from ..base import UnsupportedFeature
from ..lower import LAYER_LOWERINGS
from ..nir_graph import NIR_LOWERINGS, join
from .resnet import ResidualBackboneGraph, lower_resnet

LAYER_LOWERINGS.register(SEWResNet)(lower_resnet)
NIR_LOWERINGS.register(SEWResNet)(ResidualBackboneGraph)


@NIR_LOWERINGS.register(SEWBlock)
class SEWBlockGraph:

    @staticmethod
    def check(block, layer):
        if block.cnf != 'ADD':
            raise UnsupportedFeature(
                'nir', layer, f'SEW connect function {block.cnf} (a product '
                'of spikes; NIR nodes only sum their inputs)',
                "use cnf='ADD'")

    @staticmethod
    def build(graph, block, scope, sources, x):
        a, y = graph.conv_bn(join(scope, 'conv1'), block.conv1, block.bn1,
                             sources, x)
        a, y = graph.fire(join(scope, 'sn1'), a, y)
        a, y = graph.conv_bn(join(scope, 'conv2'), block.conv2, block.bn2, a,
                             y)
        a, y = graph.fire(join(scope, 'sn2'), a, y)
        if block.downsample is not None:
            conv, bn = block.downsample
            s, ys = graph.conv_bn(join(scope, 'downsample.0'), conv, bn,
                                  sources, x)
            sources, _ = graph.fire(join(scope, 'sn_down'), s, ys)
        # ADD: the block output is the sum of both spike sources
        return a + sources, y
