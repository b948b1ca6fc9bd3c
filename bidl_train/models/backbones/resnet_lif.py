"""Spiking ResNets (ResNetLif) in BIDL's style: depths 10, 18, 34 and 50.

Blocks (``x`` = input spikes, ``SN`` = the spiking neuron, default BIDL LIF):

* BasicBlock: ``y = SN2(BN2(conv3x3(SN1(BN1(conv3x3_s(x))))) + sc(x))``
* Bottleneck (expansion 4):
  ``y = SN3(BN3(conv1x1(SN2(BN2(conv3x3_s(SN1(BN1(conv1x1(x)))))))) + sc(x))``

with the shortcut ``sc`` the identity when the stride and the width stay,
else a projection chosen by ``shortcut``:

* ``'conv'`` (default): ``BN(conv1x1_s(x))``, the strided 1x1 conv of
  torchvision's ResNet;
* ``'avgpool_conv'``: ``BN(conv1x1(AvgPool_s(x)))``, BIDL's ResNetLif
  (``AvgPool2d(s, ceil_mode=True)``: each s x s patch averaged, an odd map's
  last row/column over the pixels it has; no pool when s = 1). Same MACs;
  the conv sees every input pixel instead of one in s^2.

``conv_bias=True`` gives every conv (stem, blocks, shortcuts) a bias, as
BIDL's have. A bias in front of BatchNorm changes nothing the network can
compute (BN subtracts the batch mean); it only matches BIDL's parameters.

The shortcut joins the membrane input of the
last neuron (the sum is the synaptic current), so the block output is
spikes. Both block types implement ``forward`` (multi-step) and ``step``
(single-step, state = the states of the inner neurons), via
:class:`~.stateful.StatefulModule`.

Stems: ``'imagenet'`` = conv7x7/2 -> BN -> SN -> max-pool 3/2 (inputs of
112 px and more, e.g. Jester); ``'cifar'`` = conv3x3/1 -> BN -> SN for low
resolution (32-64 px DVS frames), keeping the resolution for the stages.

``lite=True`` is BIDL's "lite" variant: only the first block of each stage
keeps spiking neurons; the following blocks of the stage use ReLU in their
place (stateless, analog), which trims neuron state and latency while the
stage boundaries (where resolution changes) stay spiking.

Output: global average pooling over space, ``[T, B, C]`` with
``C = 512 * expansion * width / 64``.
"""
from copy import deepcopy

import torch.nn.functional as F
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.layers import build_neuron, check_norm_stats
from bidl_train.registry import MODELS
from .stateful import StatefulModule

__all__ = ['BasicBlockLif', 'BottleneckLif', 'ResNetLif', 'RESNET_DEPTHS',
           'SHORTCUTS']


SHORTCUTS = ('conv', 'avgpool_conv')


def _conv(c_in, c_out, k, stride=1, bias=False):
    return nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2,
                     bias=bias)


class _Activation(nn.Module):
    """Holds either a spiking neuron or a ReLU behind one call."""

    def __init__(self, neuron, channels, owner, spiking):
        super().__init__()
        self.spiking = spiking
        self.act = (build_neuron(deepcopy(neuron), (channels, None, None),
                                 owner) if spiking else nn.ReLU())

    def run(self, x, ctx, key):
        return ctx.fire(self.act, key, x) if self.spiking else self.act(x)


class _ResidualBlock(StatefulModule):
    expansion = 1

    def _make_shortcut(self, c_in, c_out, stride, shortcut, bias):
        if stride == 1 and c_in == c_out:
            return None
        if shortcut == 'conv':
            # keys shortcut.0 (conv), shortcut.1 (BN): older checkpoints
            return nn.Sequential(_conv(c_in, c_out, 1, stride, bias),
                                 nn.BatchNorm2d(c_out))
        # BIDL: pool, then a stride-1 conv. ceil_mode keeps the output size
        # equal to the main branch's (3x3 conv, padding 1, stride s:
        # ceil(H/s)) on odd maps. Identity at stride 1 (a width change
        # only) keeps the keys shortcut.1/.2 the same in every block.
        pool = (nn.AvgPool2d(stride, ceil_mode=True) if stride > 1 else
                nn.Identity())
        return nn.Sequential(pool, _conv(c_in, c_out, 1, 1, bias),
                             nn.BatchNorm2d(c_out))

    def _shortcut(self, x):
        return x if self.shortcut is None else self.shortcut(x)


class BasicBlockLif(_ResidualBlock):
    """Two 3x3 convs with a residual sum before the second neuron."""

    expansion = 1

    def __init__(self, in_channels, channels, stride=1,
                 neuron=dict(type='LIF'), spiking=True, shortcut='conv',
                 conv_bias=False):
        super().__init__()
        self.conv1 = _conv(in_channels, channels, 3, stride, conv_bias)
        self.bn1 = nn.BatchNorm2d(channels)
        self.sn1 = _Activation(neuron, channels, 'BasicBlockLif.sn1', spiking)
        self.conv2 = _conv(channels, channels, 3, bias=conv_bias)
        self.bn2 = nn.BatchNorm2d(channels)
        self.sn2 = _Activation(neuron, channels, 'BasicBlockLif.sn2', spiking)
        self.shortcut = self._make_shortcut(in_channels, channels, stride,
                                            shortcut, conv_bias)

    def compute(self, x, ctx):
        out = self.sn1.run(self.bn1(self.conv1(x)), ctx, 'sn1')
        out = self.bn2(self.conv2(out)) + self._shortcut(x)
        return self.sn2.run(out, ctx, 'sn2')


class BottleneckLif(_ResidualBlock):
    """1x1 reduce, 3x3 (strided), 1x1 expand (x4), residual before SN3."""

    expansion = 4

    def __init__(self, in_channels, channels, stride=1,
                 neuron=dict(type='LIF'), spiking=True, shortcut='conv',
                 conv_bias=False):
        super().__init__()
        out = channels * self.expansion
        self.conv1 = _conv(in_channels, channels, 1, bias=conv_bias)
        self.bn1 = nn.BatchNorm2d(channels)
        self.sn1 = _Activation(neuron, channels, 'BottleneckLif.sn1', spiking)
        self.conv2 = _conv(channels, channels, 3, stride, conv_bias)
        self.bn2 = nn.BatchNorm2d(channels)
        self.sn2 = _Activation(neuron, channels, 'BottleneckLif.sn2', spiking)
        self.conv3 = _conv(channels, out, 1, bias=conv_bias)
        self.bn3 = nn.BatchNorm2d(out)
        self.sn3 = _Activation(neuron, out, 'BottleneckLif.sn3', spiking)
        self.shortcut = self._make_shortcut(in_channels, out, stride, shortcut,
                                            conv_bias)

    def compute(self, x, ctx):
        out = self.sn1.run(self.bn1(self.conv1(x)), ctx, 'sn1')
        out = self.sn2.run(self.bn2(self.conv2(out)), ctx, 'sn2')
        out = self.bn3(self.conv3(out)) + self._shortcut(x)
        return self.sn3.run(out, ctx, 'sn3')


#: depth -> (block class, blocks per stage)
RESNET_DEPTHS = {
    10: (BasicBlockLif, (1, 1, 1, 1)),
    18: (BasicBlockLif, (2, 2, 2, 2)),
    34: (BasicBlockLif, (3, 4, 6, 3)),
    50: (BottleneckLif, (3, 4, 6, 3)),
}
STEMS = ('imagenet', 'cifar')


class _Stem(StatefulModule):

    def __init__(self, in_channels, width, stem, neuron, conv_bias=False):
        super().__init__()
        if stem == 'imagenet':
            self.conv = nn.Conv2d(in_channels, width, 7, stride=2, padding=3,
                                  bias=conv_bias)
            self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            self.conv = _conv(in_channels, width, 3, bias=conv_bias)
            self.pool = None
        self.bn = nn.BatchNorm2d(width)
        self.sn = build_neuron(deepcopy(neuron), (width, None, None),
                               'ResNetLif.stem')

    def compute(self, x, ctx):
        x = ctx.fire(self.sn, 'sn', self.bn(self.conv(x)))
        return x if self.pool is None else self.pool(x)


@MODELS.register_module()
class ResNetLif(StatefulModule):
    """Spiking ResNet: ``[T, B, C, H, W] -> [T, B, F]``.

    Args:
        depth (int): 10, 18, 34 (BasicBlock) or 50 (Bottleneck).
        in_channels (int): input channels (2 for DVS frames, 3 for RGB).
        stem (str): ``'imagenet'`` (7x7/2 + max-pool) or ``'cifar'``
            (3x3/1, for low resolution).
        width (int): channels of the first stage (64 in ResNet); stages
            double it.
        lite (bool): LIF only in the first block of every stage (others
            use ReLU), BIDL's "lite" variant.
        neuron (dict): neuron config of every spiking activation.
        shortcut (str): projection shortcut of a block that changes the
            stride or width: ``'conv'`` (strided 1x1 conv + BN) or
            ``'avgpool_conv'`` (BIDL's: average pool, 1x1 conv, BN).
        conv_bias (bool): a bias in every conv, before its BatchNorm
            (BIDL's convs have one).
        norm_stats (str): training-time BatchNorm statistics,
            ``'all_steps'`` or ``'per_step'`` (BIDL's outer loop; see
            :mod:`bidl_train.layers.time_fold`).
    """

    def __init__(self, depth=18, in_channels=2, stem='imagenet', width=64,
                 lite=False, neuron=dict(type='LIF'), shortcut='conv',
                 conv_bias=False, norm_stats='all_steps'):
        super().__init__()
        self.norm_stats = check_norm_stats('ResNetLif', norm_stats)
        if depth not in RESNET_DEPTHS:
            raise ConfigError(f'ResNetLif: depth must be one of '
                              f'{sorted(RESNET_DEPTHS)}, got {depth!r}')
        if stem not in STEMS:
            raise ConfigError(f'ResNetLif: stem must be one of {STEMS}, got '
                              f'{stem!r}')
        if shortcut not in SHORTCUTS:
            raise ConfigError(f'ResNetLif: shortcut must be one of '
                              f'{SHORTCUTS}, got {shortcut!r}')
        if not isinstance(conv_bias, bool):
            raise ConfigError(f'ResNetLif: conv_bias must be True or False, '
                              f'got {conv_bias!r}')
        block, counts = RESNET_DEPTHS[depth]
        self.stem = _Stem(in_channels, width, stem, neuron, conv_bias)
        stages, c_in = [], width
        for i, count in enumerate(counts):
            channels = width * 2**i
            blocks = []
            for j in range(count):
                blocks.append(block(c_in, channels,
                                    stride=(2 if i > 0 and j == 0 else 1),
                                    neuron=neuron,
                                    spiking=(j == 0 or not lite),
                                    shortcut=shortcut, conv_bias=conv_bias))
                c_in = channels * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.out_features = c_in

    def compute(self, x, ctx):
        x = self.stem.compute(x, ctx.scope('stem'))
        for i, stage in enumerate(self.stages):
            for j, block in enumerate(stage):
                x = block.compute(x, ctx.scope(f'stages.{i}.{j}'))
        return F.adaptive_avg_pool2d(x, 1).flatten(1)
