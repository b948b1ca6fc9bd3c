"""Registered data transforms (``results dict -> results dict``).

Event representations (events -> ``inputs``) live in :mod:`.representation`;
event-level augmentations in :mod:`.events`; frame-level augmentations in
:mod:`.frames`; clip transforms in :mod:`.video`; volume transforms in
:mod:`.volume`; per-sample spike encoding of static data in :mod:`.encode`.
"""
from . import video, volume  # noqa: F401  (registers clip/volume transforms)
from .encode import SpikeEncode
from .events import (EventDrop, EventFlipLR, EventShift, EventSpatialJitter,
                     EventTimeJitter, EventTimeScale, PolarityFlip)
from .frames import (RandomCropPad, RandomFlipFrames, RandomRotateFrames,
                     ResizeFrames)
from .representation import EventFrames, SpikeBins, TimeSurface, VoxelGrid
from .tonic import TonicTransform, TonicView  # Tonic interop (lazy import)

__all__ = [
    'EventDrop', 'EventFlipLR', 'EventFrames', 'EventShift',
    'EventSpatialJitter', 'EventTimeJitter', 'EventTimeScale', 'PolarityFlip',
    'RandomCropPad', 'RandomFlipFrames', 'RandomRotateFrames', 'ResizeFrames',
    'SpikeBins', 'SpikeEncode', 'TimeSurface', 'VoxelGrid'
]
