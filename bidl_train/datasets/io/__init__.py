"""Event-stream file readers.

One entry point, :func:`read_events`, detects the format from the file's
first bytes (and its extension where the format has no header) and returns
an :data:`EVENT_DTYPE` structured array (``t`` int64 us, ``x``/``y`` uint16,
``p`` uint8 with 1 = ON). The readers import nothing of ours except
:mod:`bidl_train.errors`.

=================  ============================  ===========================
format             detected by                   reader
=================  ============================  ===========================
``aedat3``         header ``#!AER-DAT3``         :func:`read_aedat31`
``aedat2``         header ``#!AER-DAT2`` (or     :func:`read_aedat2`
                   ``#`` lines / no header with
                   extension ``.aedat``)
``aedat4``         header ``#!AER-DAT4``         :func:`read_aedat4`
``nmnist_bin``     extension ``.bin``            :func:`read_nmnist_bin`
``numpy``          extension ``.npy``/``.npz``   :func:`read_numpy_events`
``prophesee_dat``  extension ``.dat``            :func:`read_prophesee_dat`
                   (Prophesee CD events)
``prophesee_raw``  extension ``.raw``            :func:`read_prophesee_raw`
                   (Prophesee EVT 2.0 / 3.0)
=================  ============================  ===========================

Formats whose header records the sensor geometry (the Prophesee ones) also
give it: ``read_events(path, return_sensor_size=True)`` returns ``(events,
(H, W))`` (``None`` for formats without one), and :func:`read_sensor_size`
reads only the header.

SHD/SSC ``.h5`` files hold a whole split; read them with
:func:`read_spike_h5`.
"""
import os

from bidl_train.errors import DataError

from .aedat2 import read_aedat2, write_aedat2_dvs128
from .aedat3 import read_aedat31, write_aedat31
from .aedat4 import read_aedat4
from .events import EVENT_DTYPE, empty_events, make_events
from .hdf5_spikes import read_spike_h5, read_spike_h5_keys
from .nmnist_bin import read_nmnist_bin, write_nmnist_bin
from .numpy_events import read_numpy_events
from .prophesee import (read_prophesee_dat, read_prophesee_header,
                        read_prophesee_raw)

READERS = {
    'aedat3': read_aedat31,
    'aedat2': read_aedat2,
    'aedat4': read_aedat4,
    'nmnist_bin': read_nmnist_bin,
    'numpy': read_numpy_events,
    'prophesee_dat': read_prophesee_dat,
    'prophesee_raw': read_prophesee_raw,
}
#: Readers that also return the sensor size their file's header records.
SIZED_READERS = ('prophesee_dat', 'prophesee_raw')
#: Extensions that :func:`read_events` (and event folder datasets) accept.
EVENT_EXTENSIONS = ('.aedat', '.aedat4', '.bin', '.npy', '.npz', '.dat',
                    '.raw')


def detect_format(path):
    """Name of the format of ``path`` (a key of :data:`READERS`)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError('event file not found', path=path)
    with open(path, 'rb') as f:
        head = f.read(16)
    if head.startswith(b'#!AER-DAT3'):
        return 'aedat3'
    if head.startswith(b'#!AER-DAT4'):
        return 'aedat4'
    if head.startswith(b'#!AER-DAT2') or head.startswith(b'#!AER-DAT1'):
        return 'aedat2'
    ext = os.path.splitext(path)[1].lower()
    if ext in ('.npy', '.npz'):
        return 'numpy'
    if ext == '.bin':
        return 'nmnist_bin'
    if ext == '.dat':
        return 'prophesee_dat'
    if ext == '.raw':
        return 'prophesee_raw'
    if ext == '.aedat':
        # jAER files without a version line use the AEDAT 2.0 body
        return 'aedat2'
    if ext in ('.h5', '.hdf5'):
        raise DataError('an .h5 file holds a whole SHD/SSC split; read it '
                        'with read_spike_h5 (or the SHD dataset)', path=path)
    raise DataError(
        f'cannot tell the event format (extension {ext!r}, first bytes '
        f'{head[:10]!r}); pass format= one of {sorted(READERS)}', path=path)


def _format_of(path, format):
    fmt = detect_format(path) if format is None else format
    if fmt not in READERS:
        raise DataError(f'unknown event format {fmt!r}; use one of '
                        f'{sorted(READERS)}', path=path)
    return fmt


def read_events(path, format=None, return_sensor_size=False, **kwargs):
    """Read an event file into an :data:`EVENT_DTYPE` array.

    Args:
        path: the file.
        format: one of :data:`READERS`' keys, or None to detect it.
        return_sensor_size: return ``(events, sensor_size)``, the
            ``(H, W)`` the file's header records (None for formats that
            record none; see :data:`SIZED_READERS`).
        **kwargs: passed to the reader (e.g. ``sensor='davis'`` for AEDAT 2).
    """
    fmt = _format_of(path, format)
    if fmt in SIZED_READERS:
        events, size = READERS[fmt](path, return_sensor_size=True, **kwargs)
    else:
        events, size = READERS[fmt](path, **kwargs), None
    return (events, size) if return_sensor_size else events


def read_sensor_size(path, format=None):
    """``(H, W)`` recorded in the file's header, or None (formats without
    one, or a header without geometry). Reads the header only."""
    if _format_of(path, format) not in SIZED_READERS:
        return None
    return read_prophesee_header(path)['sensor_size']


__all__ = [
    'EVENT_DTYPE', 'EVENT_EXTENSIONS', 'READERS', 'detect_format',
    'empty_events', 'make_events', 'read_aedat2', 'read_aedat31',
    'read_aedat4', 'read_events', 'read_nmnist_bin', 'read_numpy_events',
    'read_prophesee_dat', 'read_prophesee_header', 'read_prophesee_raw',
    'read_sensor_size', 'SIZED_READERS',
    'read_spike_h5', 'read_spike_h5_keys', 'write_aedat2_dvs128',
    'write_aedat31',
    'write_nmnist_bin'
]
