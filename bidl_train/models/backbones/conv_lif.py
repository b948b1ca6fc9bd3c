"""BIDL's sequential Conv-LIF backbones.

A stack of ``Conv2dLif`` blocks (conv, BatchNorm, optional max-pool, LIF)
followed by ``FcLif`` blocks. BIDL's DVS-gesture network is 3 conv + 2 FC at
40x40, its CIFAR10-DVS network 5 conv + 2 FC at 128x128; both are this class
with different ``channels``/``fc`` lists.
"""
from copy import deepcopy

from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.layers import Conv2dLif, FcLif, SpikingSequential, TimeFold
from bidl_train.registry import MODELS


@MODELS.register_module()
class ConvLifNet(nn.Module):
    """``[T, B, C, H, W] -> [T, B, F]``: conv-LIF blocks then FC-LIF blocks.

    Args:
        in_channels (int): input channels (2 for DVS polarity frames).
        input_size (int | tuple): input height and width.
        channels (list[int]): output channels of each ``Conv2dLif``.
        pools (list[int | None]): max-pool kernel after each conv (None: no
            pooling); same length as ``channels``.
        kernel_size (int): conv kernel (padding keeps the size).
        fc (list[int]): widths of the ``FcLif`` blocks after flattening.
        norm (bool): BatchNorm after every conv.
        dropout (float): dropout in the FC blocks.
        neuron (dict): neuron config for every block (default BIDL LIF).
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
                 neuron=dict(type='LIF')):
        super().__init__()
        if len(pools) != len(channels):
            raise ConfigError(
                f'ConvLifNet: pools has {len(pools)} entries but channels has '
                f'{len(channels)}; give one pool size (or None) per conv')
        height, width = ((input_size, input_size) if isinstance(
            input_size, int) else tuple(input_size))
        blocks, c_in = [], in_channels
        for c_out, pool in zip(channels, pools):
            blocks.append(
                Conv2dLif(
                    c_in,
                    c_out,
                    kernel_size=kernel_size,
                    padding=kernel_size // 2,
                    norm=norm,
                    pool=pool,
                    neuron=deepcopy(neuron)))
            if pool:
                height, width = height // pool, width // pool
            if height < 1 or width < 1:
                raise ConfigError(
                    f'ConvLifNet: input_size {input_size} is too small for '
                    f'{len(channels)} pooling stages')
            c_in = c_out
        blocks.append(TimeFold(nn.Flatten(1)))
        features = c_in * height * width
        for width_fc in fc:
            blocks.append(
                FcLif(
                    features,
                    width_fc,
                    dropout=dropout,
                    neuron=deepcopy(neuron)))
            features = width_fc
        self.layers = SpikingSequential(*blocks)
        self.out_features = features

    def forward(self, x):
        return self.layers(x)

    def step(self, x_t, state=None):
        return self.layers.step(x_t, state)
