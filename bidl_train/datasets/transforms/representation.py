"""Transforms that turn ``results['events']`` into ``results['inputs']``.

They read the event array from ``results['events']`` and the sensor size
``(H, W)`` from ``results['sensor_size']`` (set by every event dataset) unless
``sensor_size`` is given, and write a float32 numpy array ``[T, 2, H, W]`` to
``results['inputs']``. The equations are in
:mod:`bidl_train.datasets.event_binning`.
"""
from bidl_train.errors import DataError
from bidl_train.registry import TRANSFORMS

from ..event_binning import (SPLIT_BY, events_to_frames,
                               events_to_spike_bins, events_to_time_surface,
                               events_to_voxel_grid)


def _events_and_size(results, sensor_size, name):
    if 'events' not in results:
        raise DataError(f'{name} needs results["events"]; put it before any '
                        'transform that consumes the events')
    size = sensor_size if sensor_size is not None else results.get(
        'sensor_size')
    if size is None:
        raise DataError(f'{name}: the dataset set no "sensor_size"; pass '
                        'sensor_size=(H, W) to the transform')
    return results['events'], size


@TRANSFORMS.register_module()
class EventFrames:
    """Integrate events into count frames.

    Args:
        T: number of frames (None with ``duration`` = as many as needed).
        split_by: ``'number'`` or ``'time'``.
        size: output spatial size, int or (H, W); None keeps the sensor's.
        duration: fixed frame duration in us (overrides ``split_by``).
        sensor_size: (H, W) of the coordinates; default from the results.
    """

    def __init__(self, T=16, split_by='number', size=None, duration=None,
                 sensor_size=None):
        if split_by not in SPLIT_BY:
            raise DataError(f'EventFrames: split_by must be one of '
                            f'{SPLIT_BY}, got {split_by!r}')
        if T is None and duration is None:
            raise DataError('EventFrames: give T, duration or both')
        self.T, self.split_by, self.size = T, split_by, size
        self.duration, self.sensor_size = duration, sensor_size

    def __call__(self, results):
        events, size = _events_and_size(results, self.sensor_size,
                                        'EventFrames')
        results['inputs'] = events_to_frames(events, size, self.T,
                                             self.split_by, self.duration,
                                             self.size)
        return results

    def __repr__(self):
        return (f'EventFrames(T={self.T}, split_by={self.split_by!r}, '
                f'size={self.size}, duration={self.duration})')


@TRANSFORMS.register_module()
class VoxelGrid:
    """Voxel grid with bilinear interpolation in time (``T`` bins)."""

    def __init__(self, T=16, size=None, sensor_size=None):
        self.T, self.size, self.sensor_size = T, size, sensor_size

    def __call__(self, results):
        events, size = _events_and_size(results, self.sensor_size,
                                        'VoxelGrid')
        results['inputs'] = events_to_voxel_grid(events, size, self.T,
                                                 self.size)
        return results

    def __repr__(self):
        return f'VoxelGrid(T={self.T}, size={self.size})'


@TRANSFORMS.register_module()
class TimeSurface:
    """Exponential time surfaces at the end of each of ``T`` segments."""

    def __init__(self, T=16, tau=50_000, split_by='time', size=None,
                 sensor_size=None):
        self.T, self.tau, self.split_by = T, tau, split_by
        self.size, self.sensor_size = size, sensor_size

    def __call__(self, results):
        events, size = _events_and_size(results, self.sensor_size,
                                        'TimeSurface')
        results['inputs'] = events_to_time_surface(
            events, size, self.T, self.tau, self.split_by, self.size)
        return results

    def __repr__(self):
        return (f'TimeSurface(T={self.T}, tau={self.tau}, '
                f'split_by={self.split_by!r}, size={self.size})')


@TRANSFORMS.register_module()
class SpikeBins:
    """Bin channel spike trains (SHD/SSC) over one fixed window.

    Output ``inputs``: ``layout='flat'`` gives ``[T, C]``; ``'image'`` gives
    ``[T, 1, 1, C]`` (one polarity channel, a 1 x C "image", for conv/flatten
    backbones). C is ``sensor_size[1]`` (700 for SHD/SSC). Equation in
    :func:`~bidl_train.datasets.event_binning.events_to_spike_bins`.

    Args:
        T: number of bins.
        window: window length in us (default 1 s: SHD words last < 1.4 s,
            most < 1 s).
        binary: clip counts to 1.
        layout: ``'flat'`` or ``'image'``.
        sensor_size: (1, C); default from the results.
    """

    LAYOUTS = ('flat', 'image')

    def __init__(self, T=100, window=1_000_000, binary=False, layout='flat',
                 sensor_size=None):
        if layout not in self.LAYOUTS:
            raise DataError(f'SpikeBins: layout must be one of '
                            f'{self.LAYOUTS}, got {layout!r}')
        self.T, self.window, self.binary = T, window, binary
        self.layout, self.sensor_size = layout, sensor_size

    def __call__(self, results):
        events, size = _events_and_size(results, self.sensor_size,
                                        'SpikeBins')
        channels = size[1] if not isinstance(size, int) else size
        bins = events_to_spike_bins(events, channels, self.T, self.window,
                                    binary=self.binary)
        if self.layout == 'image':
            bins = bins.reshape(self.T, 1, 1, channels)
        results['inputs'] = bins
        return results

    def __repr__(self):
        return (f'SpikeBins(T={self.T}, window={self.window}, '
                f'binary={self.binary}, layout={self.layout!r})')
