"""Registered data transforms (``results dict -> results dict``).

Event representations (events -> ``inputs``) live in :mod:`.representation`;
event-level augmentations in :mod:`.events`; frame-level augmentations in
:mod:`.frames`.
"""
from .events import (EventDrop, EventFlipLR, EventShift, EventSpatialJitter,
                     EventTimeScale, PolarityFlip)
from .frames import RandomCropPad, RandomFlipFrames
from .representation import EventFrames, TimeSurface, VoxelGrid

__all__ = [
    'EventDrop', 'EventFlipLR', 'EventFrames', 'EventShift',
    'EventSpatialJitter', 'EventTimeScale', 'PolarityFlip', 'RandomCropPad',
    'RandomFlipFrames', 'TimeSurface', 'VoxelGrid'
]
