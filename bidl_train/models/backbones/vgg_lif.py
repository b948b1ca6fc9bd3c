"""VGG-style Conv-LIF networks.

An architecture is a list of conv widths with ``'M'`` marking a 2x2
max-pool; the pool is attached to the preceding ``Conv2dLif`` (pooling the
synaptic current before the neuron, as all our conv layers do). After the
convs the feature map is averaged over space (``global_pool``) or
flattened, then optional FcLif blocks follow. Built on
:class:`~.conv_lif.ConvLifNet`, so both execution forms come with it.
"""
from bidl_train.errors import ConfigError
from bidl_train.registry import MODELS
from .conv_lif import ConvLifNet

__all__ = ['VGGLif', 'VGG_ARCHS']

VGG_ARCHS = {
    'vgg11': [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512,
              'M'],
    'vgg13': [64, 64, 'M', 128, 128, 'M', 256, 256, 'M', 512, 512, 'M',
              512, 512, 'M'],
    'vgg16': [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512,
              'M', 512, 512, 512, 'M'],
    # the 9-conv net of SNN papers on CIFAR10-DVS at 48x48 ("VGGSNN")
    'vggsnn': [64, 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'],
}


def parse_arch(arch):
    """``[64, 'M', 128]`` -> channels ``[64, 128]``, pools ``[2, None]``."""
    channels, pools = [], []
    for item in arch:
        if item == 'M':
            if not channels or pools[-1] is not None:
                raise ConfigError(
                    f'VGGLif: "M" must follow a conv width, got {arch}')
            pools[-1] = 2
        elif isinstance(item, int) and item > 0:
            channels.append(item)
            pools.append(None)
        else:
            raise ConfigError(f'VGGLif: arch items are positive ints or "M", '
                              f'got {item!r}')
    return channels, pools


@MODELS.register_module()
class VGGLif(ConvLifNet):
    """``[T, B, C, H, W] -> [T, B, F]``.

    Args:
        arch (str | list): a name of ``VGG_ARCHS`` or a width/'M' list.
        in_channels, input_size, fc, dropout, neuron, norm: as ConvLifNet.
        global_pool (bool): average over space before the FC blocks
            (default True).
    """

    def __init__(self, arch='vgg11', in_channels=2, input_size=48, fc=(),
                 dropout=0.0, neuron=dict(type='LIF'), norm=True,
                 global_pool=True):
        if isinstance(arch, str):
            if arch not in VGG_ARCHS:
                raise ConfigError(f'VGGLif: unknown arch {arch!r}; use one of '
                                  f'{sorted(VGG_ARCHS)} or a list')
            arch = VGG_ARCHS[arch]
        channels, pools = parse_arch(arch)
        super().__init__(in_channels=in_channels, input_size=input_size,
                         channels=channels, pools=pools, kernel_size=3,
                         fc=fc, norm=norm, dropout=dropout, neuron=neuron,
                         global_pool=global_pool)
