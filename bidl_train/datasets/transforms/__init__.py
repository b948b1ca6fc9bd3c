"""Registered data transforms (``results dict -> results dict``).

Event representations (events -> ``inputs``) live in :mod:`.representation`;
event-level augmentations in :mod:`.events`; frame-level augmentations in
:mod:`.frames`; clip transforms in :mod:`.video`; volume transforms in
:mod:`.volume`.
"""
from . import video, volume  # noqa: F401  (registers clip/volume transforms)
from .events import (EventDrop, EventFlipLR, EventShift, EventSpatialJitter,
                     EventTimeJitter, EventTimeScale, PolarityFlip)
from .frames import (RandomCropPad, RandomFlipFrames, RandomRotateFrames,
                     ResizeFrames)
from .representation import EventFrames, SpikeBins, TimeSurface, VoxelGrid

__all__ = [
    'EventDrop', 'EventFlipLR', 'EventFrames', 'EventShift',
    'EventSpatialJitter', 'EventTimeJitter', 'EventTimeScale', 'PolarityFlip',
    'RandomCropPad', 'RandomFlipFrames', 'RandomRotateFrames', 'ResizeFrames',
    'SpikeBins', 'TimeSurface', 'VoxelGrid'
]
