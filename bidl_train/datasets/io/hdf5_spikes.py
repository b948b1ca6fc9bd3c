"""Spiking Heidelberg Digits / Spiking Speech Commands ``.h5`` reader.

Layout (Cramer et al., 2020)::

    spikes/times  vlen float   spike times of each sample, in seconds
    spikes/units  vlen uint16  input channel (0..699) of each spike
    labels        uint16       class of each sample
    extra/keys    bytes        (optional) class names, index = label

One file holds a whole split, so this reader returns one event array per
sample: ``x`` = unit, ``y`` = 0, ``p`` = 1, ``t`` = round(time * 1e6) us.
Needs the optional ``h5py`` package.
"""
import os

import numpy as np

from bidl_train.errors import DataError

from .events import make_events


def _open(path):
    try:
        import h5py
    except ImportError as err:
        raise DataError('reading SHD/SSC .h5 needs the optional "h5py" '
                        'package: pip install h5py', path=path) from err
    try:
        return h5py.File(path, 'r')
    except OSError as err:
        raise DataError(f'cannot open as HDF5 ({err})', path=path) from err


def read_spike_h5(path):
    """Return ``(list of event arrays, int64 labels array)`` of a SHD/SSC file."""
    path = os.fspath(path)
    try:
        with _open(path) as f:
            for key in ('spikes/times', 'spikes/units', 'labels'):
                if key not in f:
                    raise DataError(f'missing dataset "{key}"; expected the '
                                    'SHD/SSC layout spikes/times, '
                                    'spikes/units, labels', path=path)
            times, units = f['spikes/times'][:], f['spikes/units'][:]
            labels = np.asarray(f['labels'][:], dtype=np.int64)
    except DataError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as err:
        # h5py reports corrupt objects inside a readable file this way
        raise DataError(f'corrupt HDF5 content ({err})', path=path) from None
    if not len(times) == len(units) == len(labels):
        raise DataError(f'spikes/times, spikes/units and labels differ in '
                        f'length ({len(times)}, {len(units)}, {len(labels)})',
                        path=path)
    samples = []
    for i, (ts, us) in enumerate(zip(times, units)):
        if len(ts) != len(us):
            raise DataError(f'sample {i}: {len(ts)} times but {len(us)} '
                            'units', path=path)
        t = np.rint(np.asarray(ts, np.float64) * 1e6).astype(np.int64)
        samples.append(make_events(t, us, np.zeros_like(t),
                                   np.ones_like(t)))
    return samples, labels


def read_spike_h5_keys(path):
    """Class names stored in ``extra/keys`` (a list of str), or None when the
    file has none."""
    path = os.fspath(path)
    with _open(path) as f:
        if 'extra/keys' not in f:
            return None
        keys = f['extra/keys'][:]
    return [k.decode('utf-8') if isinstance(k, bytes) else str(k)
            for k in keys]
