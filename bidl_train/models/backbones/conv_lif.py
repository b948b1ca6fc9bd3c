"""BIDL's sequential Conv-LIF backbones.

A stack of ``Conv2dLif`` blocks (conv, optional max-pool, BatchNorm, LIF)
followed by fully connected blocks. BIDL's networks are this class with
different lists (see ``configs/_base_/models``):

* DVS128 Gesture, 40x40 (``clif3flif2dg``): convs 64/128/256, stride 2, no
  pooling, BatchNorm on the input frames, FcLif 256 (+ the head's readout);
* DVS128 Gesture / CIFAR10-DVS, 128x128 (``clif7fc1``): 7 convs
  64/64/128/128/256/256/512, each pooled by 2, one linear readout;
* CIFAR10-DVS, 128x128 (``clif5fc2cd``): conv 5x5/2 32, then 3x3 64/128/
  256/512, every conv pooled by 2, a ReLU FC of 512 (+ readout);
* DVS-MNIST and Luna16Cls (``clif3fc3``): convs 32/64/128 pooled by 2, ReLU
  FCs 512 and 128 (+ readout).

FC blocks are ``FcLif`` (``fc_type='lif'``) or, as in BIDL's CIFAR10-DVS,
DVS-MNIST and Luna16 nets, plain ``Linear -> ReLU`` applied per step
(``fc_type='relu'``). ``global_pool=True`` averages the last feature map
over space instead of flattening it (VGG-style nets).

Pooling sits where BIDL puts it: inside ``Conv2dLif`` on the synaptic
current (``pool_position='synapse'``, BIDL's ``Conv2dLif(mp=True)``:
clif7fc1) or after the layer on its output (``pool_position='output'``, the
separate ``nn.MaxPool2d`` after each ``Conv2dLif`` of BIDL's clif3fc3dm/lc
and clif5fc2cd), where the neurons run at the unpooled resolution.
"""
from copy import deepcopy

from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.layers import Conv2dLif, FcLif, SpikingSequential, TimeFold
from bidl_train.registry import MODELS

FC_TYPES = ('lif', 'relu')
POOL_POSITIONS = ('synapse', 'output')


def _per_layer(value, count, name):
    """An int for every layer, or a list with one entry per layer."""
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise ConfigError(
                f'ConvLifNet: {name} has {len(value)} entries but channels '
                f'has {count}; give one value per conv (or a single int)')
        return list(value)
    return [value] * count


@MODELS.register_module()
class ConvLifNet(nn.Module):
    """``[T, B, C, H, W] -> [T, B, F]``: conv-LIF blocks then FC blocks.

    Args:
        in_channels (int): input channels (2 for DVS polarity frames).
        input_size (int | tuple): input height and width.
        channels (list[int]): output channels of each ``Conv2dLif``.
        pools (list[int | None]): max-pool kernel after each conv (None: no
            pooling); same length as ``channels``.
        kernel_size (int | list[int]): conv kernel(s); padding ``k // 2``.
        strides (int | list[int]): conv stride(s).
        fc (list[int]): widths of the FC blocks after flattening.
        norm (bool): BatchNorm after every conv.
        dropout (float): dropout on the input of every FC block.
        neuron (dict): neuron config for every spiking block.
        input_norm (bool): BatchNorm2d on the input frames (BIDL's
            DVS-gesture net).
        fc_type (str): ``'lif'`` (FcLif) or ``'relu'`` (Linear + ReLU).
        global_pool (bool): average over space instead of flattening.
        pool_position (str): ``'synapse'`` (max-pool the conv output before
            BatchNorm and neuron) or ``'output'`` (max-pool the layer's
            output, after the neuron).
        norm_stats (str): training-time BatchNorm statistics,
            ``'all_steps'`` or ``'per_step'`` (BIDL's outer loop; see
            :mod:`bidl_train.layers.time_fold`).
    """

    def __init__(self,
                 in_channels=2,
                 input_size=32,
                 channels=(32, 32, 32),
                 pools=(2, 2, 2),
                 kernel_size=3,
                 fc=(128, ),
                 norm=True,
                 dropout=0.0,
                 neuron=dict(type='LIF'),
                 strides=1,
                 input_norm=False,
                 fc_type='lif',
                 global_pool=False,
                 pool_position='synapse',
                 norm_stats='all_steps'):
        super().__init__()
        if len(pools) != len(channels):
            raise ConfigError(
                f'ConvLifNet: pools has {len(pools)} entries but channels has '
                f'{len(channels)}; give one pool size (or None) per conv')
        if fc_type not in FC_TYPES:
            raise ConfigError(f'ConvLifNet: fc_type must be one of '
                              f'{FC_TYPES}, got {fc_type!r}')
        if pool_position not in POOL_POSITIONS:
            raise ConfigError(f'ConvLifNet: pool_position must be one of '
                              f'{POOL_POSITIONS}, got {pool_position!r}')
        pool_output = pool_position == 'output'
        kernels = _per_layer(kernel_size, len(channels), 'kernel_size')
        strides = _per_layer(strides, len(channels), 'strides')
        height, width = ((input_size, input_size) if isinstance(
            input_size, int) else tuple(input_size))
        blocks, c_in = [], in_channels
        if input_norm:
            blocks.append(TimeFold(nn.BatchNorm2d(in_channels)))
        for i, (c_out, pool, k, s) in enumerate(
                zip(channels, pools, kernels, strides)):
            blocks.append(
                Conv2dLif(
                    c_in,
                    c_out,
                    kernel_size=k,
                    stride=s,
                    padding=k // 2,
                    norm=norm,
                    pool=None if pool_output else pool,
                    neuron=deepcopy(neuron)))
            if pool and pool_output:
                blocks.append(TimeFold(nn.MaxPool2d(pool)))
            height = (height + 2 * (k // 2) - k) // s + 1
            width = (width + 2 * (k // 2) - k) // s + 1
            if pool:
                height, width = height // pool, width // pool
            if height < 1 or width < 1:
                raise ConfigError(
                    f'ConvLifNet: input_size {input_size} is too small for '
                    f'conv {i} (strides {strides}, pools {list(pools)})')
            c_in = c_out
        if global_pool:
            blocks.append(TimeFold(nn.AdaptiveAvgPool2d(1)))
            height = width = 1
        blocks.append(TimeFold(nn.Flatten(1)))
        features = c_in * height * width
        for width_fc in fc:
            if fc_type == 'lif':
                blocks.append(
                    FcLif(
                        features,
                        width_fc,
                        dropout=dropout,
                        neuron=deepcopy(neuron)))
            else:
                if dropout > 0:
                    blocks.append(TimeFold(nn.Dropout(dropout)))
                blocks.append(TimeFold(nn.Linear(features, width_fc)))
                blocks.append(TimeFold(nn.ReLU()))
            features = width_fc
        self.layers = SpikingSequential(*blocks, norm_stats=norm_stats)
        self.out_features = features

    def forward(self, x):
        return self.layers(x)

    def step(self, x_t, state=None):
        return self.layers.step(x_t, state)
