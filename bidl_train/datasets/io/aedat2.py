"""AEDAT 2.0 (jAER; CIFAR10-DVS, MNIST-DVS, old DVS128 recordings) reader.

Layout::

    ASCII header: lines starting with '#' (the first '#!AER-DAT2.0'); it
                  ends at the first line that does not start with '#'
    body: records of big-endian uint32 address, big-endian uint32 timestamp (us)

Address layouts (``sensor``):

``'dvs128'``: raw_x = (a & 0xFE) >> 1, y = (a & 0x7F00) >> 8, raw_p = a & 1.
    Returned in jAER's orientation: x = 127 - raw_x, p = 1 - raw_p (raw 0 is
    ON in jAER).
``'davis'`` (DAVIS240/346): y = (a & 0x7FC00000) >> 22,
    x = (a & 0x003FF000) >> 12, p = (a & 0x800) >> 11 (1 = ON); records with
    bit 31 set are not DVS events (APS/IMU) and are skipped.
``'auto'``: ``'davis'`` when the header names a DAVIS camera or any address
    needs more than 15 bits, otherwise ``'dvs128'``.

Dataset-specific orientations (CIFAR10-DVS transposes and flips) are applied
by the dataset, not here.
"""
import os

import numpy as np

from bidl_train.errors import DataError

from .events import EVENT_DTYPE

RECORD = np.dtype([('a', '>u4'), ('t', '>u4')])
SENSORS = ('auto', 'dvs128', 'davis')


def _split_header(buf, path):
    """Return (header bytes, offset of the first body byte)."""
    pos = 0
    while buf[pos:pos + 1] == b'#':
        nl = buf.find(b'\n', pos)
        if nl < 0:
            raise DataError('AEDAT 2.0 header line never ends (no newline); '
                            'the file is truncated', path=path, offset=pos)
        pos = nl + 1
    return buf[:pos], pos


def read_aedat2(path, sensor='auto'):
    """Read the DVS events of an AEDAT 2.0 (or header-less 1.0) file."""
    path = os.fspath(path)
    if sensor not in SENSORS:
        raise DataError(f'unknown AEDAT 2.0 sensor {sensor!r}; use one of '
                        f'{SENSORS}', path=path)
    with open(path, 'rb') as f:
        buf = f.read()
    header, start = _split_header(buf, path)
    body_len = len(buf) - start
    if body_len % RECORD.itemsize:
        bad = start + body_len - body_len % RECORD.itemsize
        raise DataError(
            f'AEDAT 2.0 body is {body_len} bytes, not a multiple of 8: the '
            'last record is cut short; the file is truncated', path=path,
            offset=bad)
    rec = np.frombuffer(buf, RECORD, body_len // RECORD.itemsize, start)
    a = rec['a'].astype(np.int64)
    if sensor == 'auto':
        davis = b'DAVIS' in header.upper() or bool(a.size and a.max() >= 1 << 15)
        sensor = 'davis' if davis else 'dvs128'
    if sensor == 'dvs128':
        events = np.empty(a.size, dtype=EVENT_DTYPE)
        events['t'] = rec['t']
        events['x'] = 127 - ((a & 0xFE) >> 1)
        events['y'] = (a & 0x7F00) >> 8
        events['p'] = 1 - (a & 1)
        return events
    keep = (a >> 31) == 0
    a = a[keep]
    events = np.empty(a.size, dtype=EVENT_DTYPE)
    events['t'] = rec['t'][keep]
    events['x'] = (a & 0x003FF000) >> 12
    events['y'] = (a & 0x7FC00000) >> 22
    events['p'] = (a & 0x800) >> 11
    return events


def write_aedat2_dvs128(path, events):
    """Write events (jAER orientation, as :func:`read_aedat2` returns them)
    as a DVS128 AEDAT 2.0 file; used by synthetic data and round-trip tests."""
    path = os.fspath(path)
    rec = np.empty(len(events), RECORD)
    x = 127 - np.asarray(events['x'], np.int64)
    a = (np.asarray(events['y'], np.int64) << 8) | (x << 1) | (
        1 - np.asarray(events['p'], np.int64))
    rec['a'] = a
    rec['t'] = events['t']
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'wb') as f:
        f.write(b'#!AER-DAT2.0\r\n# This is a raw AE data file - do not edit\r\n'
                b'# HardwareInterface: DVS128\r\n')
        f.write(rec.tobytes())
    os.replace(tmp, path)
