"""Datasets, readers, representations and transforms.

Importing this package registers every dataset and transform in
:data:`bidl_train.registry.DATASETS` / :data:`~bidl_train.registry.TRANSFORMS`.
One module per modality: ``dvs`` (event streams), ``video``, ``volume``,
``text``, ``static`` (images to be spike-encoded), ``es_imagenet``;
``synthetic/`` writes demo data in the real on-disk layouts.
"""
from . import transforms  # noqa: F401  (registers transforms)
from .dvs import (CIFAR10DVS, DVS128Gesture, DVSMNIST, EventFolder,
                  EventMixDataset, NCaltech101, NMNIST)
from .es_imagenet import ESImageNet
from .shd import SHD, SSC
from .shift import SensorShift, ShiftedDataset
from .static import MNIST, FashionMNIST, SyntheticMNIST
from .synthetic import SyntheticGesture, make_synthetic_gestures
from .synthetic.motion import SyntheticMotion
from .text import IMDB, SyntheticIMDB, TextClassificationCSV
from .video import Jester, RGBGesture, SyntheticJester, VideoFolder
from .volume import Luna16Cls, MedMNIST3D, SyntheticMedMNIST3D, VolumeFolder

__all__ = [
    'CIFAR10DVS', 'DVS128Gesture', 'EventFolder', 'NMNIST', 'SyntheticGesture',
    'make_synthetic_gestures', 'IMDB', 'SyntheticIMDB',
    'TextClassificationCSV', 'Jester', 'RGBGesture', 'SyntheticJester',
    'VideoFolder', 'Luna16Cls', 'MedMNIST3D', 'SyntheticMedMNIST3D',
    'VolumeFolder', 'SensorShift', 'ShiftedDataset', 'SyntheticMotion',
    'ESImageNet', 'MNIST', 'FashionMNIST', 'SyntheticMNIST', 'DVSMNIST',
    'EventMixDataset', 'NCaltech101', 'SHD', 'SSC'
]
