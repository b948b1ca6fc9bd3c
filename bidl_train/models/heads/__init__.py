from .cls_head import SpikingClsHead

__all__ = ['SpikingClsHead']
