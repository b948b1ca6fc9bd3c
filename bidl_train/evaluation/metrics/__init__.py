from .classification import Accuracy, FiringRate, to_serialisable

__all__ = ['Accuracy', 'FiringRate', 'to_serialisable']
