"""Spike-element-wise ResNet (SEW-ResNet, Fang et al., NeurIPS 2021).

A SEW block keeps both branches spiking and joins them after the neurons:

``A = SN2(BN2(conv3x3(SN1(BN1(conv3x3_s(x))))))``,
``S = x`` or, when the stride or width changes, ``SN_d(BN_d(conv1x1_s(x)))``,
``y = g(A, S)`` with the connect function ``g``:

* ``'ADD'``:  ``A + S`` (outputs in {0, 1, 2}: counts of coincident spikes)
* ``'AND'``:  ``A * S``
* ``'IAND'``: ``(1 - A) * S`` (spikes of S not already explained by A)

so an identity block can express the identity mapping exactly (``A = 0``
gives ``y = S`` for ADD and IAND), which plain spiking ResNets cannot.
Stem and stages as in :class:`~.resnet_lif.ResNetLif` (BasicBlock layout).
"""
from copy import deepcopy

import torch.nn.functional as F
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.layers import build_neuron
from bidl_train.registry import MODELS
from .resnet_lif import STEMS, _conv, _Stem
from .stateful import StatefulModule

__all__ = ['SEWBlock', 'SEWResNet', 'CONNECT_FUNCTIONS']

CONNECT_FUNCTIONS = ('ADD', 'AND', 'IAND')
SEW_DEPTHS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}


def connect(a, s, cnf):
    """``g(A, S)`` of the module docstring."""
    if cnf == 'ADD':
        return a + s
    if cnf == 'AND':
        return a * s
    return (1.0 - a) * s


class SEWBlock(StatefulModule):
    """Basic SEW block; state = states of sn1, sn2 (and the downsample)."""

    def __init__(self, in_channels, channels, stride=1, cnf='ADD',
                 neuron=dict(type='LIF')):
        super().__init__()
        if cnf not in CONNECT_FUNCTIONS:
            raise ConfigError(f'SEWBlock: cnf must be one of '
                              f'{CONNECT_FUNCTIONS}, got {cnf!r}')
        self.cnf = cnf
        shape = (channels, None, None)
        self.conv1 = _conv(in_channels, channels, 3, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.sn1 = build_neuron(deepcopy(neuron), shape, 'SEWBlock.sn1')
        self.conv2 = _conv(channels, channels, 3)
        self.bn2 = nn.BatchNorm2d(channels)
        self.sn2 = build_neuron(deepcopy(neuron), shape, 'SEWBlock.sn2')
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                _conv(in_channels, channels, 1, stride),
                nn.BatchNorm2d(channels))
            self.sn_down = build_neuron(deepcopy(neuron), shape,
                                        'SEWBlock.sn_down')

    def compute(self, x, ctx):
        a = ctx.fire(self.sn1, 'sn1', self.bn1(self.conv1(x)))
        a = ctx.fire(self.sn2, 'sn2', self.bn2(self.conv2(a)))
        s = x
        if self.downsample is not None:
            s = ctx.fire(self.sn_down, 'sn_down', self.downsample(x))
        return connect(a, s, self.cnf)

    def extra_repr(self):
        return f'cnf={self.cnf!r}'


@MODELS.register_module()
class SEWResNet(StatefulModule):
    """SEW-ResNet ``[T, B, C, H, W] -> [T, B, F]``.

    Args:
        depth (int): 10, 18 or 34.
        in_channels (int): input channels.
        cnf (str): connect function ``'ADD'``, ``'AND'`` or ``'IAND'``.
        stem (str): ``'imagenet'`` or ``'cifar'`` (see ResNetLif).
        width (int): channels of the first stage.
        neuron (dict): neuron config.
    """

    def __init__(self, depth=18, in_channels=2, cnf='ADD', stem='cifar',
                 width=64, neuron=dict(type='LIF')):
        super().__init__()
        if depth not in SEW_DEPTHS:
            raise ConfigError(f'SEWResNet: depth must be one of '
                              f'{sorted(SEW_DEPTHS)}, got {depth!r}')
        if stem not in STEMS:
            raise ConfigError(f'SEWResNet: stem must be one of {STEMS}, got '
                              f'{stem!r}')
        self.stem = _Stem(in_channels, width, stem, neuron)
        stages, c_in = [], width
        for i, count in enumerate(SEW_DEPTHS[depth]):
            channels = width * 2**i
            blocks = []
            for j in range(count):
                blocks.append(SEWBlock(c_in, channels,
                                       stride=(2 if i > 0 and j == 0 else 1),
                                       cnf=cnf, neuron=neuron))
                c_in = channels
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.out_features = c_in

    def compute(self, x, ctx):
        x = self.stem.compute(x, ctx.scope('stem'))
        for i, stage in enumerate(self.stages):
            for j, block in enumerate(stage):
                x = block.compute(x, ctx.scope(f'stages.{i}.{j}'))
        return F.adaptive_avg_pool2d(x, 1).flatten(1)
