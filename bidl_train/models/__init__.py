"""Backbones, heads, classifiers, losses and the data preprocessor."""
from .backbones import *  # noqa: F401,F403
from .classifiers import SpikingClassifier
from .data_preprocessor import SpikingDataPreprocessor
from .encoders import (DeltaEncoder, DirectEncoder, LatencyEncoder,
                       PopulationEncoder, RateEncoder)
from .heads import *  # noqa: F401,F403
from .losses import BCEWithLogitsLoss, CrossEntropyLoss
from .losses_tet import TETLoss  # noqa: F401

__all__ = [
    'SpikingClassifier', 'SpikingDataPreprocessor', 'CrossEntropyLoss',
    'BCEWithLogitsLoss', 'DeltaEncoder', 'DirectEncoder', 'LatencyEncoder',
    'PopulationEncoder', 'RateEncoder'
]
