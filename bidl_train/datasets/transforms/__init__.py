"""Registered data transforms (``results dict -> results dict``).

Event representations (events -> ``inputs``) live in :mod:`.representation`;
event-level augmentations in :mod:`.events`; frame-level augmentations in
:mod:`.frames`.
"""
from .representation import EventFrames, TimeSurface, VoxelGrid

__all__ = ['EventFrames', 'TimeSurface', 'VoxelGrid']
