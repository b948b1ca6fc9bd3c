"""Writers of Prophesee ``.dat`` and ``.raw`` files, word by word, for the
tests.

They assemble bytes with ``struct`` from Prophesee's published layouts
(docs.prophesee.ai: "DAT File Format", "RAW File Format", "EVT 2.0
Format", "EVT 3.0 Format"), not through the package's reader, so a reader
test checks the reader against an independent encoding. The word helpers
(``evt3_*``, ``evt2_*``) give exact control of a stream (vectors, time
wraps, words before the first time high); :func:`evt3_encode` and
:func:`evt2_encode` turn an event list into a plausible stream for the
fuzz tests.
"""
import struct

# -- DAT ----------------------------------------------------------------------


def dat_bytes(rows, width=640, height=480, ev_type=0x0C, ev_size=8,
              header=True):
    """A DAT file: ``% `` header, type and size bytes, then per event
    ``uint32 t`` and ``uint32 x | y << 14 | p << 28``."""
    head = b''
    if header:
        head = (b'% Data file containing CD events\n'
                b'% Date 2020-09-14 14:18:29\n% Version 2\n'
                + f'% Width {width}\n% Height {height}\n'.encode()
                + bytes([ev_type, ev_size]))
    body = b''.join(struct.pack('<II', t, x | (y << 14) | (p << 28))
                    for t, x, y, p in rows)
    return head + body


# -- RAW header ---------------------------------------------------------------


def raw_header(encoding='evt3', width=1280, height=720, style='format',
               end=True):
    """A RAW header naming the encoding and geometry.

    ``style``: ``'format'`` (``% format EVT3;height=..;width=..``, current
    Metavision), ``'evt'`` (``% evt 3.0`` + ``% geometry WxH``) or
    ``'legacy'`` (``% evt 3.0`` + ``% width`` / ``% height``).
    """
    version = {'evt3': '3.0', 'evt2': '2.0'}[encoding]
    lines = ['% camera_integrator_name Prophesee', '% date 2023-03-29 '
             '16:37:46', '% integrator_name Prophesee']
    if style == 'format':
        lines += [f'% evt {version}',
                  f'% format {encoding.upper()};height={height};'
                  f'width={width}']
    elif style == 'evt':
        lines += [f'% evt {version}', f'% geometry {width}x{height}']
    else:
        lines += [f'% evt {version}', f'% width {width}',
                  f'% height {height}']
    lines.append('% serial_number 00ca0009')
    if end:
        lines.append('% end')
    return ('\n'.join(lines) + '\n').encode()


def raw_bytes(words, encoding='evt3', **header):
    """Header + little-endian words (16-bit for EVT 3.0, 32-bit for 2.0)."""
    code = '<%dH' if encoding == 'evt3' else '<%dI'
    return (raw_header(encoding, **header)
            + struct.pack(code % len(words), *words))


# -- EVT 3.0 words: 4-bit type in bits 15..12 ---------------------------------


def evt3_addr_y(y, master=0):
    return (0x0 << 12) | (master << 11) | y


def evt3_addr_x(x, p):
    return (0x2 << 12) | (p << 11) | x


def evt3_vect_base_x(x, p):
    return (0x3 << 12) | (p << 11) | x


def evt3_vect_12(valid):
    return (0x4 << 12) | valid


def evt3_vect_8(valid):
    return (0x5 << 12) | valid


def evt3_time_low(low):
    return (0x6 << 12) | low


def evt3_time_high(high):
    return (0x8 << 12) | high


def evt3_ext_trigger(value, channel):
    return (0xA << 12) | (channel << 8) | value


def evt3_others(subtype):
    return (0xE << 12) | subtype


def evt3_continued_12(data):
    return (0xF << 12) | data


def evt3_encode(rows):
    """EVT 3.0 words of time-sorted events ``(t, x, y, p)`` (t < 2**24).

    A time high on each change of ``t >> 12``, a time low on each change
    of ``t``, a row on each change of y; an event whose successor shares
    t, y and p and lies within the next 11 columns starts a vector
    (VECT_BASE_X + VECT_12), the others are single EVT_ADDR_X words.
    """
    words, high, low, row = [], None, None, None
    i = 0
    while i < len(rows):
        t, x, y, p = rows[i]
        if t >> 12 != high:
            high, low = t >> 12, None
            words.append(evt3_time_high(high))
        if t & 0xFFF != low:
            low = t & 0xFFF
            words.append(evt3_time_low(low))
        if y != row:
            row = y
            words.append(evt3_addr_y(y))
        group = [x]
        j = i + 1
        while (j < len(rows) and rows[j][0] == t and rows[j][2] == y
               and rows[j][3] == p and x < rows[j][1] < x + 12
               and rows[j][1] > group[-1]):
            group.append(rows[j][1])
            j += 1
        if len(group) == 1:
            words.append(evt3_addr_x(x, p))
        else:
            valid = sum(1 << (c - x) for c in group)
            words += [evt3_vect_base_x(x, p), evt3_vect_12(valid)]
        i = j
    return words


# -- EVT 2.0 words: 4-bit type in bits 31..28 ---------------------------------


def evt2_cd(t_low, x, y, p):
    """CD_ON (p=1) / CD_OFF (p=0): 6 time LSBs, 11-bit x, 11-bit y."""
    return (p << 28) | (t_low << 22) | (x << 11) | y


def evt2_time_high(high):
    return (0x8 << 28) | high


def evt2_ext_trigger(t_low, value, channel):
    return (0xA << 28) | (t_low << 22) | (channel << 8) | value


def evt2_encode(rows):
    """EVT 2.0 words of time-sorted events ``(t, x, y, p)``: a time high on
    each change of ``t >> 6``."""
    words, high = [], None
    for t, x, y, p in rows:
        if t >> 6 != high:
            high = t >> 6
            words.append(evt2_time_high(high))
        words.append(evt2_cd(t & 0x3F, x, y, p))
    return words
