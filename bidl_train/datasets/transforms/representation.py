"""Transforms that turn ``results['events']`` into ``results['inputs']``.

They read the event array from ``results['events']`` and the sensor size
``(H, W)`` from ``results['sensor_size']`` (set by every event dataset) unless
``sensor_size`` is given, and write a float32 numpy array ``[T, 2, H, W]`` to
``results['inputs']``. The equations are in
:mod:`bidl_train.datasets.event_binning`.

``num_steps`` (T, the number of frames or bins) is each transform's
``num_steps`` attribute; ``T=`` is accepted as its old name
(:func:`bidl_train.utils.time_steps.resolve_num_steps`).
"""
from bidl_train.errors import DataError
from bidl_train.registry import TRANSFORMS
from bidl_train.utils.time_steps import (DEFAULT_NUM_STEPS, UNSET,
                                   resolve_num_steps)

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
        num_steps: number of frames, T (None with ``duration`` = as many as
            needed); default
            :data:`~bidl_train.utils.time_steps.DEFAULT_NUM_STEPS`. ``T`` is
            its old name.
        split_by: ``'number'`` or ``'time'``.
        size: output spatial size, int or (H, W); None keeps the sensor's.
        duration: fixed frame duration in us (overrides ``split_by``).
        sensor_size: (H, W) of the coordinates; default from the results.
    """

    def __init__(self, num_steps=UNSET, split_by='number', size=None,
                 duration=None, sensor_size=None, T=UNSET):
        if split_by not in SPLIT_BY:
            raise DataError(f'EventFrames: split_by must be one of '
                            f'{SPLIT_BY}, got {split_by!r}')
        self.num_steps = resolve_num_steps('EventFrames', num_steps, T=T,
                                           default=DEFAULT_NUM_STEPS)
        if self.num_steps is None and duration is None:
            raise DataError('EventFrames: give num_steps, duration or both')
        self.split_by, self.size = split_by, size
        self.duration, self.sensor_size = duration, sensor_size

    def __call__(self, results):
        events, size = _events_and_size(results, self.sensor_size,
                                        'EventFrames')
        results['inputs'] = events_to_frames(events, size, self.num_steps,
                                             self.split_by, self.duration,
                                             self.size)
        return results

    def __repr__(self):
        return (f'EventFrames(num_steps={self.num_steps}, '
                f'split_by={self.split_by!r}, size={self.size}, '
                f'duration={self.duration})')


@TRANSFORMS.register_module()
class VoxelGrid:
    """Voxel grid with bilinear interpolation in time (``num_steps`` bins,
    default :data:`~bidl_train.utils.time_steps.DEFAULT_NUM_STEPS`; ``T`` is
    its old name)."""

    def __init__(self, num_steps=UNSET, size=None, sensor_size=None, T=UNSET):
        self.num_steps = resolve_num_steps('VoxelGrid', num_steps, T=T,
                                           default=DEFAULT_NUM_STEPS)
        self.size, self.sensor_size = size, sensor_size

    def __call__(self, results):
        events, size = _events_and_size(results, self.sensor_size,
                                        'VoxelGrid')
        results['inputs'] = events_to_voxel_grid(events, size,
                                                 self.num_steps,
                                                 self.size)
        return results

    def __repr__(self):
        return f'VoxelGrid(num_steps={self.num_steps}, size={self.size})'


@TRANSFORMS.register_module()
class TimeSurface:
    """Exponential time surfaces at the end of each of ``num_steps``
    segments (default :data:`~bidl_train.utils.time_steps.DEFAULT_NUM_STEPS`;
    ``T`` is its old name)."""

    def __init__(self, num_steps=UNSET, tau=50_000, split_by='time', size=None,
                 sensor_size=None, T=UNSET):
        self.num_steps = resolve_num_steps('TimeSurface', num_steps, T=T,
                                           default=DEFAULT_NUM_STEPS)
        self.tau, self.split_by = tau, split_by
        self.size, self.sensor_size = size, sensor_size

    def __call__(self, results):
        events, size = _events_and_size(results, self.sensor_size,
                                        'TimeSurface')
        results['inputs'] = events_to_time_surface(
            events, size, self.num_steps, self.tau, self.split_by,
            self.size)
        return results

    def __repr__(self):
        return (f'TimeSurface(num_steps={self.num_steps}, tau={self.tau}, '
                f'split_by={self.split_by!r}, size={self.size})')


@TRANSFORMS.register_module()
class SpikeBins:
    """Bin channel spike trains (SHD/SSC) over one fixed window.

    Output ``inputs``: ``layout='flat'`` gives ``[T, C]``; ``'image'`` gives
    ``[T, 1, 1, C]`` (one polarity channel, a 1 x C "image", for conv/flatten
    backbones). C is ``sensor_size[1]`` (700 for SHD/SSC). Equation in
    :func:`~bidl_train.datasets.event_binning.events_to_spike_bins`.

    Args:
        num_steps: number of bins, T (``T`` is its old name; default 100,
            the SHD/SSC convention of 10 ms bins over 1 s).
        window: window length in us (default 1 s: SHD words last < 1.4 s,
            most < 1 s).
        binary: clip counts to 1.
        layout: ``'flat'`` or ``'image'``.
        sensor_size: (1, C); default from the results.
    """

    LAYOUTS = ('flat', 'image')

    def __init__(self, num_steps=UNSET, window=1_000_000, binary=False,
                 layout='flat', sensor_size=None, T=UNSET):
        if layout not in self.LAYOUTS:
            raise DataError(f'SpikeBins: layout must be one of '
                            f'{self.LAYOUTS}, got {layout!r}')
        self.num_steps = resolve_num_steps('SpikeBins', num_steps, T=T,
                                           default=100)
        self.window, self.binary = window, binary
        self.layout, self.sensor_size = layout, sensor_size

    def __call__(self, results):
        events, size = _events_and_size(results, self.sensor_size,
                                        'SpikeBins')
        channels = size[1] if not isinstance(size, int) else size
        bins = events_to_spike_bins(events, channels, self.num_steps,
                                    self.window,
                                    binary=self.binary)
        if self.layout == 'image':
            bins = bins.reshape(self.num_steps, 1, 1, channels)
        results['inputs'] = bins
        return results

    def __repr__(self):
        return (f'SpikeBins(num_steps={self.num_steps}, window={self.window}, '
                f'binary={self.binary}, layout={self.layout!r})')
