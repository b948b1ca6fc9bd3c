"""Datasets, readers, representations and transforms.

Importing this package registers every dataset and transform in
:data:`bidl_train.registry.DATASETS` / :data:`~bidl_train.registry.TRANSFORMS`.
"""
from . import transforms  # noqa: F401  (registers transforms)
from .dvs import CIFAR10DVS, DVS128Gesture, EventFolder, NMNIST
from .synthetic import SyntheticGesture, make_synthetic_gestures

__all__ = [
    'CIFAR10DVS', 'DVS128Gesture', 'EventFolder', 'NMNIST', 'SyntheticGesture',
    'make_synthetic_gestures'
]
