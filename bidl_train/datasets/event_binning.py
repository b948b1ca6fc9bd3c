"""Binning event streams into dense arrays: frames, voxel grids, time surfaces.

The maths only; the pipeline transforms that call it (``EventFrames``,
``VoxelGrid``, ``TimeSurface``, ``SpikeBins``) are in
:mod:`bidl_train.datasets.transforms.representation`.

All functions take an event array with fields ``t, x, y, p`` (see
:mod:`bidl_train.datasets.io`), a ``sensor_size=(H, W)`` and return float32
numpy arrays ``[T, 2, H, W]`` (channel 0 = OFF, p = 0; channel 1 = ON).

Frame integration (``events_to_frames``) follows the de-facto standard of
the SNN literature (SpikingJelly's ``integrate_events_by_fixed_frames_number``
and fixed-duration integration). With N events, first/last timestamps
``t0``/``t1``:

* ``split_by='number'``: ``di = N // T``; frame i counts events
  ``[i*di, (i+1)*di)`` in array order; the last frame runs to N.
* ``split_by='time'``: ``dt = (t1 - t0) // T``; frame i counts events with
  ``t0 + i*dt <= t < t0 + (i+1)*dt``; the last frame also takes every later
  event. (That is ``index = min((t - t0) // dt, T - 1)``; with ``dt = 0``
  everything lands in the last frame, as in the segment definition.)
* ``duration=d`` (fixed duration): ``index = (t - t0) // d``. With ``T``
  None there are ``(t1 - t0) // d + 1`` frames; with ``T`` given the output
  is the window ``[t0, t0 + T*d)`` and later events are outside it.

Spike trains on channels (SHD/SSC: ``x`` = channel, ``y`` = 0) are binned
by :func:`events_to_spike_bins` over one fixed window for every sample:
``index = floor(t * T / window)``, events at ``t >= window`` dropped.

Optional spatial down-sampling to ``size=(H', W')`` maps coordinates with
integer scaling ``x' = x * W' // W``, ``y' = y * H' // H`` before counting.
"""
import numpy as np

from bidl_train.errors import DataError

SPLIT_BY = ('number', 'time')


def _pair(size, name):
    if isinstance(size, int):
        return size, size
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError) as err:
        raise DataError(f'{name} must be an int or (H, W), got {size!r}') \
            from err
    return h, w


def check_coordinates(events, sensor_size):
    """Raise DataError if an event lies outside ``sensor_size`` or has a
    polarity other than 0/1 (a wrong sensor size would otherwise corrupt
    the counts of other pixels)."""
    h, w = sensor_size
    if len(events) == 0:
        return
    if int(events['x'].max()) >= w or int(events['y'].max()) >= h:
        raise DataError(
            f'event coordinates up to x={int(events["x"].max())}, '
            f'y={int(events["y"].max())} do not fit sensor_size (H, W) = '
            f'({h}, {w}); set the dataset\'s sensor_size correctly')
    if int(events['p'].max()) > 1:
        raise DataError(f'polarity {int(events["p"].max())} found; '
                        'polarities must be 0 (OFF) or 1 (ON)')


def scale_coordinates(events, sensor_size, size):
    """``(x', y', (H', W'))`` with ``x' = x * W' // W``, ``y' = y * H' // H``."""
    h, w = sensor_size
    oh, ow = (h, w) if size is None else _pair(size, 'size')
    x = events['x'].astype(np.int64)
    y = events['y'].astype(np.int64)
    if (oh, ow) != (h, w):
        x = x * ow // w
        y = y * oh // h
    return x, y, (oh, ow)


def frame_index(t, T=None, split_by='number', duration=None):
    """Frame index of each event and the number of frames (see module doc).

    Returns ``(index int64 [N], num_frames)``; an index may be >= num_frames
    only in fixed-duration mode with T given (the event lies after the
    window).
    """
    t = np.asarray(t, dtype=np.int64)
    n = t.size
    if duration is not None:
        duration = int(duration)
        if duration <= 0:
            raise DataError(f'duration must be > 0 us, got {duration}')
        idx = (t - t[0]) // duration if n else np.zeros(0, np.int64)
        frames = T if T is not None else (int(idx.max()) + 1 if n else 1)
        return idx, int(frames)
    if T is None or int(T) <= 0:
        raise DataError(f'T must be a positive number of frames, got {T!r}')
    T = int(T)
    if split_by == 'number':
        di = n // T
        if di == 0:
            return np.full(n, T - 1, np.int64), T
        return np.minimum(np.arange(n, dtype=np.int64) // di, T - 1), T
    if split_by == 'time':
        if n == 0:
            return np.zeros(0, np.int64), T
        dt = (int(t[-1]) - int(t[0])) // T
        if dt == 0:
            return np.full(n, T - 1, np.int64), T
        return np.minimum((t - t[0]) // dt, T - 1), T
    raise DataError(f'split_by must be one of {SPLIT_BY}, got {split_by!r}')


def events_to_frames(events, sensor_size, T=None, split_by='number',
                     duration=None, size=None):
    """Integrate events into per-pixel count frames ``[T, 2, H, W]`` float32.

    Args:
        events: event array (fields t, x, y, p), in time order for
            ``split_by='time'`` / ``duration``.
        sensor_size: ``(H, W)`` of the sensor the coordinates refer to.
        T: number of frames (required unless ``duration`` is given).
        split_by: ``'number'`` or ``'time'`` (ignored with ``duration``).
        duration: fixed frame duration in us.
        size: optional output ``(H', W')`` (or an int for square).
    """
    sensor_size = _pair(sensor_size, 'sensor_size')
    check_coordinates(events, sensor_size)
    idx, frames = frame_index(events['t'], T, split_by, duration)
    x, y, (oh, ow) = scale_coordinates(events, sensor_size, size)
    p = events['p'].astype(np.int64)
    inside = idx < frames
    flat = ((idx * 2 + p) * oh + y) * ow + x
    counts = np.bincount(flat[inside], minlength=frames * 2 * oh * ow)
    return counts.astype(np.float32).reshape(frames, 2, oh, ow)


def events_to_voxel_grid(events, sensor_size, T, size=None):
    """Voxel grid ``[T, 2, H, W]`` with bilinear interpolation in time.

    Timestamps are normalised to ``tau = (T - 1) * (t - t0) / (t1 - t0)``;
    each event adds ``max(0, 1 - |tau - i|)`` to bin i of its pixel and
    polarity channel (so it splits one unit between the two nearest bins).
    With all events at one time, tau = 0.
    """
    sensor_size = _pair(sensor_size, 'sensor_size')
    check_coordinates(events, sensor_size)
    T = int(T)
    x, y, (oh, ow) = scale_coordinates(events, sensor_size, size)
    grid = np.zeros(T * 2 * oh * ow, np.float64)
    if len(events):
        t = events['t'].astype(np.float64)
        span = t[-1] - t[0]
        tau = (T - 1) * (t - t[0]) / span if span > 0 else np.zeros_like(t)
        left = np.floor(tau).astype(np.int64)
        frac = tau - left
        base = (events['p'].astype(np.int64) * oh + y) * ow + x
        for shift, weight in ((0, 1.0 - frac), (1, frac)):
            b = left + shift
            ok = (b < T) & (weight > 0)
            np.add.at(grid, (b[ok] * 2 * oh * ow) + base[ok], weight[ok])
    return grid.astype(np.float32).reshape(T, 2, oh, ow)


def events_to_time_surface(events, sensor_size, T, tau, split_by='time',
                           size=None):
    """Exponential time surfaces ``[T, 2, H, W]`` sampled at the end of each
    of T segments (segments as in :func:`events_to_frames`).

    Frame i at pixel/polarity q holds ``exp(-(t_end_i - t_q) / tau)`` where
    ``t_q`` is the latest event of q up to the end of segment i (0 if none)
    and ``t_end_i`` the timestamp of the last event of segment i (``tau`` in
    us).
    """
    sensor_size = _pair(sensor_size, 'sensor_size')
    check_coordinates(events, sensor_size)
    idx, frames = frame_index(events['t'], T, split_by)
    x, y, (oh, ow) = scale_coordinates(events, sensor_size, size)
    q = (events['p'].astype(np.int64) * oh + y) * ow + x
    t = events['t'].astype(np.int64)
    out = np.zeros((frames, 2 * oh * ow), np.float32)
    latest = np.full(2 * oh * ow, np.iinfo(np.int64).min, np.int64)
    t_end = None
    for i in range(frames):
        sel = idx == i
        if sel.any():
            np.maximum.at(latest, q[sel], t[sel])
            t_end = int(t[sel].max())
        if t_end is None:
            continue
        seen = latest > np.iinfo(np.int64).min
        out[i, seen] = np.exp(-(t_end - latest[seen]) / float(tau))
    return out.reshape(frames, 2, oh, ow)


def events_to_spike_bins(events, channels, T, window, start=0, binary=False):
    """Spike counts ``[T, channels]`` float32 over the fixed window
    ``[start, start + window)`` us, cut into T equal bins.

    Bin of an event: ``i = floor((t - start) * T / window)`` (integer
    arithmetic, so bin edges are exact); events outside the window are
    dropped. Unlike ``split_by='time'`` the bins do not depend on a sample's
    first/last spike, so bin i means the same time in every sample (the
    SHD/SSC convention, e.g. T = 100 bins of 10 ms over 1 s). ``binary``
    clips counts to 1.
    """
    T, window, channels = int(T), int(window), int(channels)
    if T <= 0 or window <= 0:
        raise DataError(f'T and window must be > 0, got T={T}, '
                        f'window={window}')
    x = events['x'].astype(np.int64)
    if len(events) and (int(x.max()) >= channels or int(events['y'].max())):
        raise DataError(f'spike channels up to x={int(x.max())}, y='
                        f'{int(events["y"].max())} do not fit {channels} '
                        'channels on one row (y = 0)')
    rel = events['t'].astype(np.int64) - int(start)
    inside = (rel >= 0) & (rel < window)
    idx = rel[inside] * T // window
    counts = np.bincount(idx * channels + x[inside],
                         minlength=T * channels).reshape(T, channels)
    if binary:
        counts = np.minimum(counts, 1)
    return counts.astype(np.float32)
