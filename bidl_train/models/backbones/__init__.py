from .conv_lif import ConvLifNet

__all__ = ['ConvLifNet']
