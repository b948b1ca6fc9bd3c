"""Prophesee / Metavision recordings: ``.dat`` (decoded CD events) and
``.raw`` (the camera's EVT 2.0 or EVT 3.0 stream), decoded with numpy.

Both files open with an ASCII header of lines ``% <keyword> <value>\\n``
(Prophesee's "DAT File Format" and "RAW File Format" pages). The header
gives the sensor geometry, returned as ``sensor_size = (H, W)``:

* ``.dat``: ``% Width 640`` / ``% Height 480``.
* ``.raw``: ``% format EVT3;height=720;width=1280`` (current), else
  ``% geometry 1280x720``, else ``% width`` / ``% height`` (legacy).

DAT body (little-endian): one byte event type (``0x00`` Event2d, ``0x0C``
EventCd; ``0x0E`` external triggers is refused), one byte event size
(8), then 8-byte events::

    uint32 t                  microseconds (wraps after 2**32 us; unwrapped)
    uint32 w                  x = w & 0x3FFF, y = (w >> 14) & 0x3FFF,
                              p = w >> 28 (4 bits; CD events hold 0 or 1)

RAW body: the encoding named by ``% evt 2.0`` / ``% evt 3.0`` or ``% format
EVT2;...`` / ``% format EVT3;...``; the header ends at ``% end`` (or at the
first line not starting with ``% ``). Words are little-endian, the type in
their 4 most significant bits.

EVT 2.0 (32-bit words)::

    0x0 CD_OFF / 0x1 CD_ON    bits 27..22 time LSB (6), 21..11 x, 10..0 y
    0x8 EVT_TIME_HIGH         bits 27..0 time MSB: t = high << 6 | lsb
    others (triggers, IMU, continued, ...) carry no CD event: skipped

EVT 3.0 (16-bit words, a stateful stream)::

    0x0 EVT_ADDR_Y            bits 10..0 y (bit 11: master/slave)
    0x2 EVT_ADDR_X            one event at x = bits 10..0, p = bit 11
    0x3 VECT_BASE_X           base x = bits 10..0, p = bit 11
    0x4 VECT_12               events at base + i for each set bit i of 12;
                              then base += 12
    0x5 VECT_8                the same with 8 bits; base += 8
    0x6 EVT_TIME_LOW          bits 11..0 of the 24-bit time
    0x8 EVT_TIME_HIGH         bits 23..12 of the 24-bit time
    others (triggers, continued, IMU, ...): skipped

Conventions, following Prophesee's reference decoder (OpenEB's HAL):

* Timestamps are the sensor's, not shifted to start at 0.
* Words before the first EVT_TIME_HIGH have no time base: skipped.
* A time high that drops by at least half its range (EVT 3.0: 2048 of
  4096 values; EVT 2.0: 2**27) is a wrap of the counter: later times
  gain 2**24 us (EVT 3.0) or 2**34 us (EVT 2.0) per wrap.
* EVT 3.0: an EVT_TIME_HIGH with a new value clears the low 12 bits until
  the next EVT_TIME_LOW, so time never jumps ahead on a stale low part.
* RAW events outside the header's geometry (or beyond x 2047 when the
  header gives none) are dropped, as the reference decoder drops them;
  a DAT file holds decoded events, so there such an event is an error.

The body is decoded in chunks of :data:`CHUNK_BYTES` with the decoder
state carried over, so memory stays bounded by the chunk plus the events.
This module imports nothing of ours except :mod:`bidl_train.errors`.
"""
import os

import numpy as np

from bidl_train.errors import DataError

from .events import EVENT_DTYPE, empty_events

#: bytes of body decoded at once (rounded down to whole words)
CHUNK_BYTES = 1 << 22
#: the longest header believed: real ones are a few hundred bytes
MAX_HEADER_BYTES = 1 << 20

DAT_TYPES = {0x00: 'Event2d', 0x0C: 'EventCd'}
DAT_TRIGGER_TYPE = 0x0E
DAT_EVENT = np.dtype([('t', '<u4'), ('w', '<u4')])

EVT3_TIME_BITS = 24
EVT2_TIME_BITS = 34
MAX_X = 2047  # both encodings carry 11-bit coordinates


# -- header -------------------------------------------------------------------
def _parse_header(head, path):
    """``({keyword (lower case): value}, body offset)`` of ``% ...`` lines.

    ``head`` holds the file's first bytes. Lines start with ``%``; ``% end``
    closes the header (RAW); otherwise the body starts at the first line
    that does not start with ``%`` (RAW files: ``% ``).
    """
    fields, pos = {}, 0
    while head[pos:pos + 1] == b'%':
        end = head.find(b'\n', pos)
        if end < 0:
            raise DataError(
                'the "%" header never ends (no line feed within the first '
                f'{len(head)} bytes); the file is truncated or not a '
                'Prophesee recording', path=path, offset=pos)
        line = head[pos + 1:end].decode('latin-1').strip()
        pos = end + 1
        if line.lower() == 'end':
            break
        key, _, value = line.partition(' ')
        fields.setdefault(key.lower(), value.strip())
    return fields, pos


def _read_head(path):
    with open(path, 'rb') as f:
        return f.read(MAX_HEADER_BYTES)


def _positive(value, line, path):
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number <= 0:
        raise DataError(f'header line "% {line}": {value!r} is not a '
                        'positive integer', path=path)
    return number


def _geometry(fields, path):
    """``(H, W)`` from a RAW or DAT header, or None when it gives none."""
    fmt = fields.get('format', '')
    opts = dict(item.partition('=')[::2] for item in fmt.split(';')[1:])
    opts = {k.strip().lower(): v.strip() for k, v in opts.items()}
    if 'height' in opts and 'width' in opts:
        line = f'format {fmt}'
        return (_positive(opts['height'], line, path),
                _positive(opts['width'], line, path))
    if 'geometry' in fields:  # WxH
        line = f'geometry {fields["geometry"]}'
        w, _, h = fields['geometry'].lower().partition('x')
        return _positive(h, line, path), _positive(w, line, path)
    if 'width' in fields and 'height' in fields:
        return (_positive(fields['height'], 'height ' + fields['height'],
                          path),
                _positive(fields['width'], 'width ' + fields['width'], path))
    return None


def _raw_encoding(fields, path):
    """``'evt2'`` or ``'evt3'`` from a RAW header."""
    fmt = fields.get('format', '').split(';')[0].strip().upper()
    evt = fields.get('evt', '').strip()
    name = {'EVT2': 'evt2', 'EVT3': 'evt3'}.get(fmt) or {
        '2.0': 'evt2', '3.0': 'evt3'}.get(evt)
    if name:
        return name
    given = fields.get('format') or fields.get('evt')
    if given:
        raise DataError(
            f'RAW encoding {given!r} is not supported (EVT 2.0 and EVT 3.0 '
            'are); convert the recording with Metavision (metavision_file_'
            'to_dat or a RAW re-encode)', path=path)
    raise DataError(
        'the RAW header names no event encoding (no "% evt 3.0" or '
        '"% format EVT3;..." line); add the line that matches the camera '
        'to the header', path=path)


def read_prophesee_header(path):
    """What the header of a ``.dat`` / ``.raw`` file says.

    Returns a dict: ``fields`` (keyword -> value, keywords in lower case),
    ``sensor_size`` ((H, W) or None), ``body_offset`` (bytes) and, for RAW
    files, ``encoding`` (``'evt2'`` / ``'evt3'``).
    """
    path = os.fspath(path)
    fields, offset = _parse_header(_read_head(path), path)
    info = dict(fields=fields, sensor_size=_geometry(fields, path),
                body_offset=offset)
    if path.lower().endswith('.raw'):
        info['encoding'] = _raw_encoding(fields, path)
    return info


def _body_chunks(path, offset, word_bytes):
    """Yield ``(chunk bytes, file offset)`` of the body, whole words only."""
    size = os.path.getsize(path)
    extra = (size - offset) % word_bytes
    if extra:
        raise DataError(
            f'the body is {size - offset} bytes, not a whole number of '
            f'{word_bytes}-byte words ({extra} bytes left over); the file is '
            'cut short, download or copy it again', path=path,
            offset=size - extra)
    step = max(word_bytes, CHUNK_BYTES // word_bytes * word_bytes)
    with open(path, 'rb') as f:
        f.seek(offset)
        pos = offset
        while True:
            chunk = f.read(step)
            if not chunk:
                return
            yield chunk, pos
            pos += len(chunk)


def _pack(t, x, y, p):
    events = np.empty(len(t), dtype=EVENT_DTYPE)
    events['t'], events['x'], events['y'], events['p'] = t, x, y, p
    return events


def _join(chunks):
    return np.concatenate(chunks) if chunks else empty_events()


# -- DAT ----------------------------------------------------------------------
def read_prophesee_dat(path, return_sensor_size=False):
    """Read the CD events of a Prophesee ``.dat`` file.

    Returns an :data:`~.events.EVENT_DTYPE` array, or ``(events,
    sensor_size)`` with ``return_sensor_size=True`` (``(H, W)`` from the
    header's Width/Height, or None).
    """
    path = os.fspath(path)
    head = _read_head(path)
    fields, pos = _parse_header(head, path)
    size = _geometry(fields, path)
    if pos:  # a header is followed by the event type and size bytes
        if len(head) < pos + 2:
            raise DataError('the event type and size bytes after the header '
                            'are missing; the file is cut short', path=path,
                            offset=pos)
        ev_type, ev_size = head[pos], head[pos + 1]
        _check_dat_type(ev_type, ev_size, path, pos)
        pos += 2
    chunks = []
    previous = None  # last timestamp of the previous chunk, for unwrapping
    wraps = 0
    for chunk, offset in _body_chunks(path, pos, DAT_EVENT.itemsize):
        raw = np.frombuffer(chunk, DAT_EVENT)
        t, previous, wraps = _unwrap32(raw['t'], previous, wraps)
        w = raw['w']
        x, y, p = w & 0x3FFF, (w >> 14) & 0x3FFF, w >> 28
        _check_dat_events(x, y, p, size, path, offset)
        chunks.append(_pack(t, x, y, p))
    events = _join(chunks)
    return (events, size) if return_sensor_size else events


def _check_dat_type(ev_type, ev_size, path, pos):
    if ev_type == DAT_TRIGGER_TYPE:
        raise DataError('this DAT file holds external trigger events (type '
                        '0x0E), not CD events', path=path, offset=pos)
    if ev_type not in DAT_TYPES:
        raise DataError(f'unknown DAT event type 0x{ev_type:02X} (CD events '
                        'are 0x0C EventCd or 0x00 Event2d)', path=path,
                        offset=pos)
    if ev_size != DAT_EVENT.itemsize:
        raise DataError(f'DAT event size {ev_size}, expected 8', path=path,
                        offset=pos + 1)


def _unwrap32(t32, previous, wraps):
    """int64 times from wrapping uint32 ones: a drop of more than half the
    range is a wrap of the 32-bit counter."""
    t = t32.astype(np.int64)
    if not len(t):
        return t, previous, wraps
    steps = np.diff(t, prepend=t[0] if previous is None else previous)
    count = wraps + np.cumsum(steps < -(1 << 31))
    t += count << 32
    return t, int(t32[-1]), int(count[-1])


def _check_dat_events(x, y, p, size, path, offset):
    bad = p > 1
    if size is not None:
        bad |= (x >= size[1]) | (y >= size[0])
    if bad.any():
        i = int(np.argmax(bad))
        where = '' if size is None else f' of the {size[1]}x{size[0]} sensor'
        raise DataError(
            f'event {i} of this chunk has x={int(x[i])}, y={int(y[i])}, '
            f'p={int(p[i])}: outside the header geometry{where} or a '
            'polarity other than 0/1; the file is corrupt', path=path,
            offset=offset + i * DAT_EVENT.itemsize)


# -- RAW ----------------------------------------------------------------------
def read_prophesee_raw(path, return_sensor_size=False):
    """Read the CD events of a Prophesee ``.raw`` file (EVT 2.0 / 3.0).

    Returns an :data:`~.events.EVENT_DTYPE` array, or ``(events,
    sensor_size)`` with ``return_sensor_size=True`` (``(H, W)`` from the
    header, or None).
    """
    path = os.fspath(path)
    fields, pos = _parse_header(_read_head(path), path)
    encoding = _raw_encoding(fields, path)
    size = _geometry(fields, path)
    decoder = EVT3Decoder() if encoding == 'evt3' else EVT2Decoder()
    chunks = [decoder.decode(np.frombuffer(chunk, decoder.word))
              for chunk, _ in _body_chunks(path, pos, decoder.word.itemsize)]
    events = _inside(_join(chunks), size)
    return (events, size) if return_sensor_size else events


def _inside(events, size):
    h, w = size if size is not None else (MAX_X + 1, MAX_X + 1)
    keep = (events['x'] < w) & (events['y'] < h)
    return events if keep.all() else events[keep]


def _pick(values, k, default):
    """``values[k]`` where ``k >= 0``, else ``default`` (the state carried
    from the chunks before)."""
    if not len(values):
        return np.full(len(k), default, dtype=np.int64)
    return np.where(k >= 0, values[np.maximum(k, 0)], default)


def _last_before(mask, positions):
    """For each of ``positions``: the number of the last word at or before
    it where ``mask`` holds, counting those words from 0; -1 if none."""
    return (np.cumsum(mask) - 1)[positions]


class EVT2Decoder:
    """EVT 2.0 words -> events, chunk by chunk (state: time high, wraps)."""

    word = np.dtype('<u4')

    def __init__(self):
        self.high = -1  # no EVT_TIME_HIGH seen yet
        self.wraps = 0

    def decode(self, words):
        kind = words >> 28
        th_pos = np.flatnonzero(kind == 0x8)
        highs = (words[th_pos] & 0x0FFFFFFF).astype(np.int64)
        wraps = self.wraps + np.cumsum(
            _wrapped(highs, self.high, 1 << 27))
        cd_pos = np.flatnonzero(kind <= 0x1)
        k = _last_before(kind == 0x8, cd_pos)
        high = _pick(highs, k, self.high)
        wrap = _pick(wraps, k, self.wraps)
        if len(th_pos):
            self.high, self.wraps = int(highs[-1]), int(wraps[-1])
        timed = high >= 0
        cd, high, wrap = words[cd_pos[timed]], high[timed], wrap[timed]
        t = ((wrap << EVT2_TIME_BITS) | (high << 6)
             | ((cd >> 22) & 0x3F).astype(np.int64))
        return _pack(t, (cd >> 11) & 0x7FF, cd & 0x7FF, cd >> 28)


def _wrapped(highs, previous, half):
    """Per time-high word: did the counter wrap since the one before?"""
    before = np.concatenate([[previous], highs])[:-1]
    return (before >= 0) & (before >= highs + half)


class EVT3Decoder:
    """EVT 3.0 words -> events, chunk by chunk.

    The state carried between chunks: the time high, the low part in force
    (0 after a new time high) and the wrap count, the row (y), the vector
    base x and polarity, and how far vectors moved the base since.
    """

    word = np.dtype('<u2')

    def __init__(self):
        self.high, self.low, self.wraps = -1, 0, 0
        self.y = -1
        self.base, self.base_p, self.moved = -1, 0, 0

    def decode(self, words):
        kind = (words >> 12).astype(np.uint8)
        value = (words & 0xFFF).astype(np.int64)
        cd_pos = np.flatnonzero((kind == 0x2) | (kind == 0x4)
                                | (kind == 0x5))
        t = self._times(kind, value, cd_pos)
        y = self._rows(kind, value, cd_pos)
        x0, p, mask = self._columns(kind, value, cd_pos)
        ok = (t >= 0) & (y >= 0) & (x0 >= 0)
        # one row of bits per CD word: bit i is an event at x0 + i; a
        # single event (EVT_ADDR_X) is a vector of one bit
        bits = np.unpackbits(mask[ok].astype('<u2').view(np.uint8)
                             .reshape(-1, 2), axis=1, bitorder='little')
        row, offset = np.nonzero(bits)  # row-major: file order
        x = x0[ok][row] + offset
        # a corrupt stream can move the base past the 11-bit range
        keep = x <= MAX_X
        row = row[keep]
        return _pack(t[ok][row], x[keep], y[ok][row], p[ok][row])

    def _times(self, kind, value, cd_pos):
        """Time of each CD word (-1 before the first time high)."""
        th_pos = np.flatnonzero(kind == 0x8)
        highs = value[th_pos]
        before = np.concatenate([[self.high], highs])[:-1]
        new = highs != before  # a new time high clears the low part
        wraps = self.wraps + np.cumsum(_wrapped(highs, self.high, 2048))
        is_low = kind == 0x6
        is_change = np.zeros(len(kind), bool)
        is_change[th_pos[new]] = True
        k = _last_before(kind == 0x8, cd_pos)
        high = _pick(highs, k, self.high)
        wrap = _pick(wraps, k, self.wraps)
        low = self._lows(value, is_low, is_change, cd_pos)
        end = np.array([len(kind) - 1])
        self.low = int(self._lows(value, is_low, is_change, end)[0])
        if len(th_pos):
            self.high, self.wraps = int(highs[-1]), int(wraps[-1])
        t = (wrap << EVT3_TIME_BITS) | (high << 12) | low
        return np.where(high >= 0, t, -1)

    def _lows(self, value, is_low, is_change, at):
        """The low 12 time bits in force at word positions ``at``."""
        tl_pos = np.flatnonzero(is_low)
        change_pos = np.flatnonzero(is_change)
        kl = _last_before(is_low, at)
        low_at = _pick(tl_pos, kl, -1)
        change_at = _pick(change_pos, _last_before(is_change, at), -1)
        low = _pick(value[tl_pos], kl, self.low)
        return np.where(change_at > low_at, 0, low)

    def _rows(self, kind, value, cd_pos):
        is_y = kind == 0x0
        rows = value[is_y] & 0x7FF
        k = _last_before(is_y, cd_pos)
        y = _pick(rows, k, self.y)
        if len(rows):
            self.y = int(rows[-1])
        return y

    def _columns(self, kind, value, cd_pos):
        """First x, polarity and bit mask of each CD word (x -1: no base)."""
        base_pos = np.flatnonzero(kind == 0x3)
        # how far the vectors so far moved the base: 12 or 8 per vector
        step = np.select([kind == 0x4, kind == 0x5], [12, 8], 0)
        moved = np.cumsum(step) - step  # before each word
        k = _last_before(kind == 0x3, cd_pos)
        # a base set in an earlier chunk has moved self.moved already
        since = moved[cd_pos] - _pick(moved[base_pos], k, -self.moved)
        base = _pick(value[base_pos] & 0x7FF, k, self.base)
        base_p = _pick(value[base_pos] >> 11, k, self.base_p)
        cd_kind = kind[cd_pos]
        single = cd_kind == 0x2
        val = value[cd_pos]
        x0 = np.where(single, val & 0x7FF, np.where(base >= 0, base + since,
                                                    -1))
        p = np.where(single, val >> 11, base_p)
        mask = np.where(single, 1, np.where(cd_kind == 0x4, val & 0xFFF,
                                            val & 0xFF))
        self._carry_base(kind, value, base_pos, moved, step)
        return x0, p, mask

    def _carry_base(self, kind, value, base_pos, moved, step):
        total = int(moved[-1] + step[-1]) if len(kind) else 0
        if len(base_pos):
            last = base_pos[-1]
            self.base = int(value[last] & 0x7FF)
            self.base_p = int(value[last] >> 11)
            self.moved = total - int(moved[last])
        else:
            self.moved += total
