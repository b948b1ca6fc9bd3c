"""N-MNIST / N-Caltech101 ``.bin`` reader (Orchard et al., 2015).

No header; 5 bytes per event::

    byte 0: x (uint8)
    byte 1: y (uint8)
    byte 2: bit 7 = polarity (1 = ON), bits 6..0 = timestamp bits 22..16
    byte 3: timestamp bits 15..8
    byte 4: timestamp bits 7..0

Timestamps are 23-bit microseconds. The original recording software marks a
timestamp overflow with a pseudo-event whose y byte is 240; every later event
is then 2**13 us later (the authors' convention). Such markers are not
events and are dropped; real recordings (~300 ms) never contain them.
"""
import os

import numpy as np

from bidl_train.errors import DataError

from .events import EVENT_DTYPE

OVERFLOW_Y = 240
OVERFLOW_STEP = 1 << 13


def read_nmnist_bin(path):
    """Read an N-MNIST / N-Caltech101 ``.bin`` file."""
    path = os.fspath(path)
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % 5:
        raise DataError(
            f'file is {raw.size} bytes, not a multiple of 5: the last event '
            'is cut short; the file is truncated', path=path,
            offset=raw.size - raw.size % 5)
    rec = raw.reshape(-1, 5).astype(np.int64)
    t = ((rec[:, 2] & 0x7F) << 16) | (rec[:, 3] << 8) | rec[:, 4]
    marker = rec[:, 1] == OVERFLOW_Y
    if marker.any():
        # each marker shifts every event after it (inclusive) by 2**13 us
        t = t + np.cumsum(marker) * OVERFLOW_STEP
    keep = ~marker
    events = np.empty(int(keep.sum()), dtype=EVENT_DTYPE)
    events['t'] = t[keep]
    events['x'] = rec[keep, 0]
    events['y'] = rec[keep, 1]
    events['p'] = rec[keep, 2] >> 7
    return events


def write_nmnist_bin(path, events):
    """Write events (t < 2**23) in the ``.bin`` layout (no overflow markers)."""
    path = os.fspath(path)
    t = np.asarray(events['t'], np.int64)
    if t.size and (t.min() < 0 or t.max() >= 1 << 23):
        raise DataError('N-MNIST .bin timestamps must lie in [0, 2**23) us',
                        path=path)
    rec = np.empty((t.size, 5), np.uint8)
    rec[:, 0] = events['x']
    rec[:, 1] = events['y']
    rec[:, 2] = (np.asarray(events['p'], np.int64) << 7) | (t >> 16)
    rec[:, 3] = (t >> 8) & 0xFF
    rec[:, 4] = t & 0xFF
    rec.tofile(path)
