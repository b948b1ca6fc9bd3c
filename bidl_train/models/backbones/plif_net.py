"""The PLIF networks of Fang et al. (ICCV 2021) for DVS data.

Conv blocks of 128 channels, each ``conv3x3 -> max-pool 2 -> BN -> PLIF``,
then ``Dropout(0.5) -> FC 512 -> PLIF``; the paper's voting layer (FC to
``10 x classes`` spiking outputs, averaged in groups of 10) is replaced by
the classification head's per-step linear readout. PLIF (learnable membrane
time constant) comes from ``bidl_train.neurons`` as neuron type ``'PLIF'``;
any other neuron config may be given instead.

Presets (number of conv blocks at 128x128 input):
``'dvs_gesture'``: 5 (-> 4x4), ``'cifar10_dvs'``: 4 (-> 8x8).
"""
from bidl_train.errors import ConfigError
from bidl_train.registry import MODELS
from .conv_lif import ConvLifNet

__all__ = ['PLIFNet', 'PLIF_PRESETS']

PLIF_PRESETS = {'dvs_gesture': 5, 'cifar10_dvs': 4}


@MODELS.register_module()
class PLIFNet(ConvLifNet):
    """``[T, B, 2, H, W] -> [T, B, fc]``.

    Args:
        preset (str): ``'dvs_gesture'`` or ``'cifar10_dvs'``.
        in_channels (int), input_size (int): input frames.
        channels (int): width of every conv block (128 in the paper).
        fc (int): width of the spiking FC layer (512).
        dropout (float): dropout before the FC layer (0.5).
        neuron (dict): default ``dict(type='PLIF')``.
    """

    def __init__(self, preset='dvs_gesture', in_channels=2, input_size=128,
                 channels=128, fc=512, dropout=0.5,
                 neuron=dict(type='PLIF')):
        if preset not in PLIF_PRESETS:
            raise ConfigError(f'PLIFNet: preset must be one of '
                              f'{sorted(PLIF_PRESETS)}, got {preset!r}')
        blocks = PLIF_PRESETS[preset]
        super().__init__(in_channels=in_channels, input_size=input_size,
                         channels=[channels] * blocks, pools=[2] * blocks,
                         kernel_size=3, fc=(fc, ), dropout=dropout,
                         neuron=neuron)
