from .auc import AUC
from .classification import Accuracy, FiringRate, to_serialisable

__all__ = ['AUC', 'Accuracy', 'FiringRate', 'to_serialisable']
