"""Backbones: ``[T, B, ...] -> [T, B, F]`` with a single-step ``step``."""
from .conv_lif import ConvLifNet
from .delay_text_lif import DelayTextLif
from .fasttext_lif import FastTextLif
from .plif_net import PLIFNet
from .resnet_lif import BasicBlockLif, BottleneckLif, ResNetLif
from .sew_resnet import SEWBlock, SEWResNet
from .spikformer import Spikformer, SpikformerBlock, SpikingSelfAttention
from .stateful import MultiStepContext, SingleStepContext, StatefulModule
from .vgg_lif import VGGLif

__all__ = [
    'ConvLifNet', 'DelayTextLif', 'FastTextLif', 'PLIFNet', 'BasicBlockLif',
    'BottleneckLif', 'ResNetLif', 'SEWBlock', 'SEWResNet', 'Spikformer',
    'SpikformerBlock', 'SpikingSelfAttention', 'StatefulModule', 'MultiStepContext',
    'SingleStepContext', 'VGGLif'
]
