"""The in-memory event array shared by every reader.

An event stream is a numpy structured array with the fields

=====  ========  ==========================================
field  dtype     meaning
=====  ========  ==========================================
``t``  int64     timestamp in microseconds
``x``  uint16    column (0 = left), the W axis of a frame
``y``  uint16    row (0 = top), the H axis of a frame
``p``  uint8     polarity, 1 = ON (brighter), 0 = OFF
=====  ========  ==========================================

Readers return events in file order (for the sensors we read this is time
order). This module imports nothing of ours.
"""
import numpy as np

#: dtype of every event array returned by :func:`read_events`.
EVENT_DTYPE = np.dtype([('t', '<i8'), ('x', '<u2'), ('y', '<u2'), ('p', 'u1')])


def make_events(t, x, y, p):
    """Pack four equally long 1-D sequences into an :data:`EVENT_DTYPE` array.

    Values are cast (``t`` to int64, ``x``/``y`` to uint16, ``p`` to uint8);
    callers are responsible for their range.
    """
    t = np.asarray(t)
    n = t.shape[0]
    events = np.empty(n, dtype=EVENT_DTYPE)
    events['t'] = t
    events['x'] = np.asarray(x)
    events['y'] = np.asarray(y)
    events['p'] = np.asarray(p)
    return events


def empty_events():
    """A zero-length event array."""
    return np.empty(0, dtype=EVENT_DTYPE)
