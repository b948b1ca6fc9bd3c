"""Prophesee ``.dat`` and ``.raw`` (EVT 2.0 / EVT 3.0) through read_events.

Files come from tests/helpers/prophesee_writers.py (bytes assembled from the
published layouts); expected events are worked out by hand in the
comments, not by a second decoder.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from helpers.prophesee_writers import (dat_bytes, evt2_cd, evt2_encode,
                               evt2_ext_trigger, evt2_time_high,
                               evt3_addr_x, evt3_addr_y, evt3_continued_12,
                               evt3_encode, evt3_ext_trigger, evt3_others,
                               evt3_time_high, evt3_time_low, evt3_vect_8,
                               evt3_vect_12, evt3_vect_base_x, raw_bytes,
                               raw_header)
from helpers.fuzzing import apply_damage, check_read, damage

from bidl_train.datasets.io import (EVENT_DTYPE, EVENT_EXTENSIONS,
                                    detect_format, make_events, read_events,
                                    read_sensor_size, write_aedat31)
from bidl_train.datasets.io import prophesee
from bidl_train.errors import DataError


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _rows(events):
    return [tuple(int(v) for v in e) for e in events[['t', 'x', 'y', 'p']]]


# -- DAT ----------------------------------------------------------------------
def test_dat_events_and_sensor_size(tmp_path):
    rows = [(10, 0, 0, 0), (11, 639, 479, 1), (4294967290, 5, 6, 1),
            (3, 7, 8, 0)]  # the uint32 clock wraps between the last two
    path = _write(tmp_path, 'rec.dat', dat_bytes(rows, 640, 480))
    events, size = read_events(path, return_sensor_size=True)
    assert events.dtype == EVENT_DTYPE
    assert size == (480, 640)
    assert read_sensor_size(path) == (480, 640)
    assert _rows(events) == [(10, 0, 0, 0), (11, 639, 479, 1),
                             (4294967290, 5, 6, 1), (2**32 + 3, 7, 8, 0)]


def test_dat_event2d_type_and_headerless_body(tmp_path):
    rows = [(1, 2, 3, 1), (4, 5, 6, 0)]
    typed = _write(tmp_path, 'a.dat', dat_bytes(rows, ev_type=0x00))
    bare = _write(tmp_path, 'b.dat', dat_bytes(rows, header=False))
    assert _rows(read_events(typed)) == rows
    events, size = read_events(bare, return_sensor_size=True)
    assert _rows(events) == rows and size is None


@pytest.mark.parametrize('data, words', [
    (dat_bytes([(1, 2, 3, 1)], ev_type=0x0E), 'external trigger'),
    (dat_bytes([(1, 2, 3, 1)], ev_type=0x07), 'unknown DAT event type 0x07'),
    (dat_bytes([(1, 2, 3, 1)], ev_size=16), 'event size 16'),
    (dat_bytes([(1, 2, 3, 1)])[:-3], 'cut short'),
    (dat_bytes([])[:-1], 'type and size bytes after the header'),
    (dat_bytes([(1, 640, 3, 1)], 640, 480), 'outside the header geometry'),
    (dat_bytes([(1, 2, 3, 3)]), 'polarity other than 0/1'),
])
def test_dat_damage_is_one_data_error(tmp_path, data, words):
    path = _write(tmp_path, 'bad.dat', data)
    with pytest.raises(DataError, match=words) as err:
        read_events(path)
    assert path in str(err.value)


# -- EVT 3.0 ------------------------------------------------------------------
EVT3_WORDS = [
    evt3_addr_y(9), evt3_addr_x(1, 1),  # no time high yet: dropped
    evt3_time_high(1), evt3_time_low(0x010),  # t = 1 << 12 | 16 = 4112
    evt3_addr_y(5),
    evt3_addr_x(7, 1),  # (4112, 7, 5, 1)
    evt3_vect_base_x(100, 0),
    evt3_vect_12(0b100000000101),  # bits 0, 2, 11: x 100, 102, 111
    evt3_vect_8(0b10000001),  # base now 112; bits 0, 7: x 112, 119
    evt3_others(0x014), evt3_continued_12(0xABC),  # not CD: skipped
    evt3_addr_y(6), evt3_time_low(0x020),  # t = 4096 + 32 = 4128
    evt3_vect_12(0b1),  # base now 120, still polarity 0: (4128, 120, 6, 0)
    evt3_ext_trigger(1, 0),  # trigger: skipped
    evt3_time_high(0xFFF),  # a new high clears the low: t = 0xFFF << 12
    evt3_addr_x(1, 1),  # (16773120, 1, 6, 1)
    evt3_time_low(0xFFF),
    evt3_addr_x(2, 0),  # (16777215, 2, 6, 0): the last 24-bit time
    evt3_time_high(0),  # dropped by >= 2048: the counter wrapped
    evt3_addr_x(3, 1),  # (2**24, 3, 6, 1)
    evt3_time_low(5),
    evt3_addr_x(4, 1),  # (2**24 + 5, 4, 6, 1)
]
EVT3_EVENTS = [(4112, 7, 5, 1), (4112, 100, 5, 0), (4112, 102, 5, 0),
               (4112, 111, 5, 0), (4112, 112, 5, 0), (4112, 119, 5, 0),
               (4128, 120, 6, 0), (16773120, 1, 6, 1), (16777215, 2, 6, 0),
               (2**24, 3, 6, 1), (2**24 + 5, 4, 6, 1)]


def test_evt3_vectors_time_wrap_and_skipped_words(tmp_path):
    path = _write(tmp_path, 'rec.raw', raw_bytes(EVT3_WORDS))
    events, size = read_events(path, return_sensor_size=True)
    assert size == (720, 1280)
    assert _rows(events) == EVT3_EVENTS


@pytest.mark.parametrize('chunk', [1, 2, 4, 6, 10, 22])
def test_evt3_state_carries_across_chunks(tmp_path, monkeypatch, chunk):
    path = _write(tmp_path, 'rec.raw', raw_bytes(EVT3_WORDS))
    monkeypatch.setattr(prophesee, 'CHUNK_BYTES', chunk)
    assert _rows(read_events(path)) == EVT3_EVENTS


def test_evt3_time_high_repeat_keeps_the_low_part(tmp_path):
    words = [evt3_time_high(2), evt3_time_low(7), evt3_addr_y(0),
             evt3_time_high(2),  # the same high again: low 7 stays
             evt3_addr_x(0, 1),
             evt3_time_high(1)]  # a drop of 1 (< 2048) is not a wrap
    words += [evt3_addr_x(1, 0)]
    path = _write(tmp_path, 'rec.raw', raw_bytes(words))
    assert _rows(read_events(path)) == [(2 * 4096 + 7, 0, 0, 1),
                                        (4096, 1, 0, 0)]


def test_evt3_events_outside_the_geometry_are_dropped(tmp_path):
    words = [evt3_time_high(0), evt3_addr_y(3), evt3_addr_x(9, 1),
             evt3_addr_x(10, 1), evt3_addr_y(4), evt3_addr_x(0, 0)]
    path = _write(tmp_path, 'rec.raw', raw_bytes(words, width=10, height=4))
    assert _rows(read_events(path)) == [(0, 9, 3, 1)]


def test_evt3_vector_without_base_is_dropped(tmp_path):
    words = [evt3_time_high(0), evt3_addr_y(3), evt3_vect_12(0b11),
             evt3_vect_base_x(4, 1), evt3_vect_8(0b10)]  # x = 4 + 1
    path = _write(tmp_path, 'rec.raw', raw_bytes(words))
    assert _rows(read_events(path)) == [(0, 5, 3, 1)]


def test_evt3_encoded_events_read_back(tmp_path):
    rng = np.random.default_rng(1)
    n = 3000
    rows = list(zip(np.sort(rng.integers(0, 2**24, n)).tolist(),
                    rng.integers(0, 1280, n).tolist(),
                    rng.integers(0, 720, n).tolist(),
                    rng.integers(0, 2, n).tolist()))
    rows += [(777, 200 + 3 * i, 50, 1) for i in range(30)]  # vectors
    rows = sorted(set(rows), key=lambda r: (r[0], r[2], r[3], r[1]))
    words = evt3_encode(rows)
    assert any(w >> 12 == 0x4 for w in words)  # vectors were written
    path = _write(tmp_path, 'rec.raw', raw_bytes(words))
    assert _rows(read_events(path)) == rows


# -- EVT 2.0 ------------------------------------------------------------------
def test_evt2_events_and_time_wrap(tmp_path):
    words = [
        evt2_cd(1, 2, 3, 1),  # no time high yet: dropped
        evt2_time_high(5),
        evt2_cd(3, 10, 20, 1),  # t = 5 << 6 | 3 = 323, CD_ON
        evt2_ext_trigger(4, 1, 0),  # trigger: skipped
        evt2_cd(4, 1279, 719, 0),  # t = 324, CD_OFF
        evt2_time_high(0x0FFFFFFF),
        evt2_cd(63, 0, 0, 1),  # t = 2**34 - 1
        evt2_time_high(0),  # the 28-bit high wrapped
        evt2_cd(1, 5, 5, 0),  # t = 2**34 + 1
    ]
    path = _write(tmp_path, 'rec.raw', raw_bytes(words, 'evt2', style='evt'))
    events, size = read_events(path, return_sensor_size=True)
    assert size == (720, 1280)
    assert _rows(events) == [(323, 10, 20, 1), (324, 1279, 719, 0),
                             (2**34 - 1, 0, 0, 1), (2**34 + 1, 5, 5, 0)]


def test_evt2_encoded_events_read_back_in_chunks(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    n = 500
    rows = list(zip(np.sort(rng.integers(0, 10**7, n)).tolist(),
                    rng.integers(0, 1280, n).tolist(),
                    rng.integers(0, 720, n).tolist(),
                    rng.integers(0, 2, n).tolist()))
    path = _write(tmp_path, 'rec.raw', raw_bytes(evt2_encode(rows), 'evt2'))
    monkeypatch.setattr(prophesee, 'CHUNK_BYTES', 12)
    assert _rows(read_events(path)) == rows


# -- RAW header ---------------------------------------------------------------
@pytest.mark.parametrize('style', ['format', 'evt', 'legacy'])
@pytest.mark.parametrize('end', [True, False])
def test_raw_header_styles_give_encoding_and_size(tmp_path, style, end):
    words = [evt3_time_high(0), evt3_addr_y(1), evt3_addr_x(2, 1)]
    path = _write(tmp_path, 'rec.raw',
                  raw_bytes(words, width=320, height=320, style=style,
                            end=end))
    assert read_sensor_size(path) == (320, 320)
    assert _rows(read_events(path)) == [(0, 2, 1, 1)]


@pytest.mark.parametrize('header, words', [
    (b'% date 2023-03-29\n% end\n', 'names no event encoding'),
    (b'% evt 2.1\n% end\n', "'2.1' is not supported"),
    (b'% format HISTO3D;height=4;width=4\n% end\n', 'not supported'),
    (b'% format EVT3;height=abc;width=4\n% end\n', 'not a positive integer'),
    (b'% evt 3.0\n% geometry 0x10\n% end\n', 'not a positive integer'),
    (b'% evt 3.0\n% date', 'never ends'),
    (b'% evt 3.0\n% end\n\x00\x80\x01', 'cut short'),
])
def test_raw_header_damage_is_one_data_error(tmp_path, header, words):
    path = _write(tmp_path, 'bad.raw', header)
    with pytest.raises(DataError, match=words) as err:
        read_events(path)
    assert path in str(err.value)


def test_dispatch_by_extension_and_size_of_other_formats(tmp_path):
    assert '.dat' in EVENT_EXTENSIONS and '.raw' in EVENT_EXTENSIONS
    dat = _write(tmp_path, 'a.dat', dat_bytes([(1, 2, 3, 1)]))
    raw = _write(tmp_path, 'a.raw', raw_header() + b'')
    assert detect_format(dat) == 'prophesee_dat'
    assert detect_format(raw) == 'prophesee_raw'
    assert len(read_events(raw)) == 0
    aedat = str(tmp_path / 'a.aedat')
    write_aedat31(aedat, make_events([1], [2], [3], [1]))
    events, size = read_events(aedat, return_sensor_size=True)
    assert len(events) == 1 and size is None
    assert read_sensor_size(aedat) is None


# -- an independent decoder agrees (where it follows the spec) ----------------
@pytest.mark.parametrize('kind', ['dat', 'evt2'])
def test_expelliarmus_agrees(tmp_path, kind):
    """expelliarmus (C decoder, tonic's dependency) on DAT and EVT 2.0.

    Not compared on EVT 3.0: it puts time-high steps 4096 us late, keeps a
    stale time low across a new time high, emits words before the first
    time high at t=0 and refuses streams holding trigger words, so the
    reader uses its own decoder (see bidl_train/datasets/io/prophesee.py).
    """
    expelliarmus = pytest.importorskip('expelliarmus')
    rng = np.random.default_rng(3)
    n = 1000
    rows = list(zip(np.sort(rng.integers(0, 10**8, n)).tolist(),
                    rng.integers(0, 1280, n).tolist(),
                    rng.integers(0, 720, n).tolist(),
                    rng.integers(0, 2, n).tolist()))
    data = (dat_bytes(rows, 1280, 720) if kind == 'dat' else
            raw_bytes(evt2_encode(rows), 'evt2'))
    path = _write(tmp_path, f'rec.{"dat" if kind == "dat" else "raw"}', data)
    theirs = expelliarmus.Wizard(encoding=kind).read(path)
    ours = read_events(path)
    assert len(ours) == len(theirs) == n
    for field in 'txyp':
        np.testing.assert_array_equal(ours[field].astype(np.int64),
                                      theirs[field].astype(np.int64))


# -- fuzz: damaged files give events or one DataError naming the file ---------
_rng = np.random.default_rng(4)
_N = 200
_ROWS = sorted(zip(np.sort(_rng.integers(0, 2**24, _N)).tolist(),
                   _rng.integers(0, 64, _N).tolist(),
                   _rng.integers(0, 48, _N).tolist(),
                   _rng.integers(0, 2, _N).tolist()))
ORIGINALS = {
    'sample.dat': dat_bytes(_ROWS, 64, 48),
    'sample2.raw': raw_bytes(evt2_encode(_ROWS), 'evt2', width=64,
                             height=48),
    'sample3.raw': raw_bytes(EVT3_WORDS + evt3_encode(_ROWS), width=64,
                             height=48),
}


@pytest.mark.parametrize('name', sorted(ORIGINALS))
@settings(max_examples=40, deadline=2000,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(how=damage)
def test_damaged_prophesee_file_gives_data_or_data_error(tmp_path, name,
                                                         how):
    check_read(tmp_path / name, apply_damage(ORIGINALS[name], how))


@pytest.mark.parametrize('name', sorted(ORIGINALS))
@settings(max_examples=20, deadline=2000,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.binary(max_size=512))
def test_random_bytes_give_data_or_data_error(tmp_path, name, junk):
    check_read(tmp_path / name, junk)
