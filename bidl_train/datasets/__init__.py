"""Datasets, readers, representations and transforms.

Importing this package registers every dataset and transform in
:data:`bidl_train.registry.DATASETS` / :data:`~bidl_train.registry.TRANSFORMS`.
"""
from . import transforms  # noqa: F401  (registers transforms)
from .dvs import DVS128Gesture
from .synthetic import SyntheticGesture, make_synthetic_gestures

__all__ = ['DVS128Gesture', 'SyntheticGesture', 'make_synthetic_gestures']
