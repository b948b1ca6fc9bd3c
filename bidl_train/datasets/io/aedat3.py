"""AEDAT 3.1 (cAER / DV, the DVS128 Gesture format): reader and writer.

Layout (all integers little-endian)::

    ASCII header: lines starting with '#', the first '#!AER-DAT3.1\\r\\n',
                  the last '#!END-HEADER\\r\\n'
    packets, back to back, each:
        28-byte header: int16 eventType (1 = polarity), int16 eventSource,
                        int32 eventSize, int32 eventTSOffset,
                        int32 eventTSOverflow, int32 eventCapacity,
                        int32 eventNumber, int32 eventValid
        eventCapacity * eventSize bytes of events

    polarity event (eventSize 8): uint32 data, int32 timestamp
        valid = data & 1            (invalid events are skipped)
        p     = (data >> 1) & 1     (1 = ON)
        y     = (data >> 2) & 0x7FFF
        x     = (data >> 17) & 0x7FFF
        t     = timestamp | (eventTSOverflow << 31)

Packets of other types (frames, IMU, special events) are skipped whole. The
loop runs once per packet; the events of a packet are decoded with numpy.
"""
import os

import numpy as np

from bidl_train.errors import DataError

from .events import EVENT_DTYPE, empty_events

MAGIC = b'#!AER-DAT3'
END_HEADER = b'#!END-HEADER\r\n'
PACKET_HEADER = np.dtype([('type', '<i2'), ('source', '<i2'),
                          ('size', '<i4'), ('ts_offset', '<i4'),
                          ('ts_overflow', '<i4'), ('capacity', '<i4'),
                          ('number', '<i4'), ('valid', '<i4')])
POLARITY_EVENT = np.dtype([('data', '<u4'), ('ts', '<i4')])
POLARITY_TYPE = 1


def _header_end(buf, path):
    """Byte offset just past ``#!END-HEADER\\r\\n``."""
    if not buf.startswith(MAGIC):
        raise DataError(
            'not an AEDAT 3.x file: it must start with "#!AER-DAT3.1"',
            path=path, offset=0)
    end = buf.find(END_HEADER)
    if end < 0:
        raise DataError(
            'AEDAT 3.1 header never ends: no "#!END-HEADER\\r\\n" line '
            '(the file is truncated or not AEDAT 3.1)', path=path, offset=0)
    return end + len(END_HEADER)


def read_aedat31(path):
    """Read the polarity events of an AEDAT 3.1 file.

    Returns an :data:`~.events.EVENT_DTYPE` array in file order. Raises
    :class:`~bidl_train.errors.DataError` naming the byte offset of a packet
    that is truncated or has an impossible header.
    """
    path = os.fspath(path)
    with open(path, 'rb') as f:
        buf = f.read()
    pos = _header_end(buf, path)
    size = len(buf)
    chunks = []
    while pos < size:
        if size - pos < PACKET_HEADER.itemsize:
            raise DataError(
                f'truncated packet header: {size - pos} bytes left, '
                f'{PACKET_HEADER.itemsize} needed; the file is cut short, '
                'download or copy it again', path=path, offset=pos)
        head = np.frombuffer(buf, PACKET_HEADER, 1, pos)[0]
        ev_size, capacity = int(head['size']), int(head['capacity'])
        if ev_size <= 0 or capacity < 0:
            raise DataError(
                f'corrupt packet header (eventSize {ev_size}, eventCapacity '
                f'{capacity})', path=path, offset=pos)
        start = pos + PACKET_HEADER.itemsize
        stop = start + capacity * ev_size
        if stop > size:
            raise DataError(
                f'truncated packet: {capacity} events of {ev_size} bytes '
                f'announced, only {size - start} bytes left; the file is cut '
                'short, download or copy it again', path=path, offset=pos)
        if int(head['type']) == POLARITY_TYPE:
            if ev_size != POLARITY_EVENT.itemsize:
                raise DataError(
                    f'polarity packet with eventSize {ev_size} (expected 8)',
                    path=path, offset=pos)
            raw = np.frombuffer(buf, POLARITY_EVENT, capacity, start)
            chunks.append(_decode_polarity(raw, int(head['ts_overflow'])))
        pos = stop
    if not chunks:
        return empty_events()
    return np.concatenate(chunks)


def _decode_polarity(raw, overflow):
    data = raw['data']
    keep = (data & 1).astype(bool)
    data = data[keep]
    events = np.empty(data.shape[0], dtype=EVENT_DTYPE)
    # timestamp is a non-negative int32; the packet's overflow counter
    # supplies the bits above bit 30
    events['t'] = raw['ts'][keep].astype(np.int64) | (np.int64(overflow) << 31)
    events['x'] = (data >> 17) & 0x7FFF
    events['y'] = (data >> 2) & 0x7FFF
    events['p'] = (data >> 1) & 1
    return events


def write_aedat31(path, events, packet_size=4096, source_name='DVS128',
                  source_id=1):
    """Write ``events`` (an EVENT_DTYPE-like array) as an AEDAT 3.1 file.

    Events are written in the given order, ``packet_size`` events per
    polarity packet; a packet never spans a change of ``t >> 31`` (the
    timestamp-overflow counter). All events are written valid. The file is
    written to a temporary name and moved into place.
    """
    path = os.fspath(path)
    t = np.asarray(events['t'], dtype=np.int64)
    x = np.asarray(events['x'], dtype=np.int64)
    y = np.asarray(events['y'], dtype=np.int64)
    p = np.asarray(events['p'], dtype=np.int64)
    if t.size and (t.min() < 0 or x.max() > 0x7FFF or y.max() > 0x7FFF
                   or x.min() < 0 or y.min() < 0 or not np.isin(p, (0, 1)).all()):
        raise DataError('events out of range for AEDAT 3.1 (need t >= 0, '
                        '0 <= x, y <= 32767, p in {0, 1})', path=path)
    header = (b'#!AER-DAT3.1\r\n#Format: RAW\r\n'
              + f'#Source {source_id}: {source_name}\r\n'.encode('ascii')
              + END_HEADER)
    body = np.empty(t.size, dtype=POLARITY_EVENT)
    body['data'] = (x << 17) | (y << 2) | (p << 1) | 1
    body['ts'] = t & 0x7FFFFFFF
    overflow = t >> 31
    # packet boundaries: every packet_size events and at each overflow change
    cuts = set(range(0, t.size, packet_size))
    cuts.update((np.flatnonzero(np.diff(overflow)) + 1).tolist())
    cuts = sorted(cuts) + [t.size]
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'wb') as f:
        f.write(header)
        for a, b in zip(cuts[:-1], cuts[1:]):
            head = np.zeros(1, PACKET_HEADER)
            head['type'] = POLARITY_TYPE
            head['source'] = source_id
            head['size'] = POLARITY_EVENT.itemsize
            head['ts_offset'] = 4
            head['ts_overflow'] = overflow[a]
            head['capacity'] = head['number'] = head['valid'] = b - a
            f.write(head.tobytes())
            f.write(body[a:b].tobytes())
    os.replace(tmp, path)
