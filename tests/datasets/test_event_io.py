"""Event file readers against files written byte by byte in the tests."""
import struct

import numpy as np
import pytest

from bidl_train.datasets.io import (EVENT_DTYPE, detect_format, make_events,
                                    read_events, read_spike_h5, write_aedat31,
                                    write_aedat2_dvs128, write_nmnist_bin)
from bidl_train.errors import DataError

HEADER31 = b'#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n'


def packet(etype, overflow, payload, size=8):
    """28-byte AEDAT 3.1 packet header + payload (capacity from length)."""
    cap = len(payload) // size
    return struct.pack('<hhiiiiii', etype, 1, size, 4, overflow, cap, cap,
                       cap) + payload


def pol(x, y, p, ts, valid=1):
    return struct.pack('<Ii', (x << 17) | (y << 2) | (p << 1) | valid, ts)


def aedat31_fixture():
    """Bytes and expected (t, x, y, p) rows; hand-made, not via the writer."""
    p1 = packet(1, 0, pol(3, 4, 1, 100) + pol(5, 6, 0, 200, valid=0)
                + pol(127, 0, 0, 2**31 - 1))
    # a special-event packet (type 0) of 3 events of 8 bytes: skipped
    p2 = packet(0, 0, b'\xff' * 24)
    # overflow 2: t = ts | (2 << 31)
    p3 = packet(1, 2, pol(0, 127, 1, 7) + pol(64, 65, 0, 9))
    expected = [(100, 3, 4, 1), (2**31 - 1, 127, 0, 0),
                ((2 << 31) | 7, 0, 127, 1), ((2 << 31) | 9, 64, 65, 0)]
    return HEADER31 + p1 + p2 + p3, expected, len(HEADER31) + len(p1) + len(p2)


def rows(events):
    return [tuple(int(v) for v in e) for e in events[['t', 'x', 'y', 'p']]]


def test_aedat31_fields_overflow_invalid_and_skipped_packets(tmp_path):
    data, expected, _ = aedat31_fixture()
    path = tmp_path / 'rec.aedat'
    path.write_bytes(data)
    assert detect_format(path) == 'aedat3'
    events = read_events(path)
    assert events.dtype == EVENT_DTYPE
    assert rows(events) == expected


@pytest.mark.parametrize('cut', [5, 28 + 8])
def test_aedat31_truncated_names_file_and_offset(tmp_path, cut):
    data, _, p3_start = aedat31_fixture()
    path = tmp_path / 'cut.aedat'
    # cut inside the header (5 bytes) or inside the events of the last packet
    path.write_bytes(data[:p3_start + cut])
    with pytest.raises(DataError) as info:
        read_events(path)
    assert info.value.offset == p3_start
    assert str(path) in str(info.value) and str(p3_start) in str(info.value)


def test_aedat31_without_end_header(tmp_path):
    path = tmp_path / 'bad.aedat'
    path.write_bytes(b'#!AER-DAT3.1\r\n#Format: RAW\r\n')
    with pytest.raises(DataError, match='END-HEADER'):
        read_events(path)


def test_aedat31_writer_round_trip_across_overflow(tmp_path):
    rng = np.random.default_rng(0)
    n = 1000
    t = np.sort(rng.integers(2**31 - 5000, 2**31 + 5000, n))
    ev = make_events(t, rng.integers(0, 128, n), rng.integers(0, 128, n),
                     rng.integers(0, 2, n))
    path = tmp_path / 'w.aedat'
    write_aedat31(path, ev, packet_size=100)
    back = read_events(path)
    assert rows(back) == rows(ev)
    # the writer's packets must be readable by the independent parse:
    # walk the packet headers with struct and count the events
    data = path.read_bytes()
    pos = data.index(b'#!END-HEADER\r\n') + 14
    total = 0
    while pos < len(data):
        etype, _, size, _, ovf, cap, num, valid = struct.unpack_from(
            '<hhiiiiii', data, pos)
        assert etype == 1 and size == 8 and cap == num == valid <= 100
        ts = struct.unpack_from('<Ii', data, pos + 28)[1]
        assert (ts | (ovf << 31)) == int(ev['t'][total])
        total += cap
        pos += 28 + cap * size
    assert total == n


def test_aedat2_dvs128_layout(tmp_path):
    body = b''
    # raw_x = 5, y = 7, raw_p = 0 (ON in jAER) -> x = 122, p = 1
    body += struct.pack('>II', (7 << 8) | (5 << 1) | 0, 10)
    # raw_x = 127, y = 127, raw_p = 1 (OFF) -> x = 0, p = 0
    body += struct.pack('>II', (127 << 8) | (127 << 1) | 1, 4000000000)
    path = tmp_path / 'cifar.aedat'
    path.write_bytes(b'#!AER-DAT2.0\r\n# This is a raw AE data file\r\n' + body)
    assert detect_format(path) == 'aedat2'
    assert rows(read_events(path)) == [(10, 122, 7, 1), (4000000000, 0, 127, 0)]
    # the DVS128 writer produces the same bytes for the same events
    back = tmp_path / 'back.aedat'
    write_aedat2_dvs128(back, read_events(path))
    assert back.read_bytes().endswith(body)


def test_aedat2_davis_layout_skips_aps(tmp_path):
    dvs = (200 << 22) | (300 << 12) | (1 << 11)
    aps = (1 << 31) | (5 << 22) | (6 << 12)
    body = struct.pack('>IIIIII', dvs, 1, aps, 2, (3 << 22) | (4 << 12), 3)
    path = tmp_path / 'davis.aedat'
    path.write_bytes(b'#!AER-DAT2.0\r\n# HardwareInterface: DAVIS346\r\n' + body)
    assert rows(read_events(path)) == [(1, 300, 200, 1), (3, 4, 3, 0)]


def test_aedat2_truncated(tmp_path):
    path = tmp_path / 't.aedat'
    head = b'#!AER-DAT2.0\r\n'
    path.write_bytes(head + struct.pack('>II', 1, 2) + b'\x00\x01\x02')
    with pytest.raises(DataError) as info:
        read_events(path)
    assert info.value.offset == len(head) + 8


def test_nmnist_bin_layout_and_overflow_marker(tmp_path):
    def rec(x, y, p, t):
        return bytes([x, y, (p << 7) | (t >> 16), (t >> 8) & 0xFF, t & 0xFF])

    data = rec(1, 2, 1, 0x7FFFFF) + rec(33, 0, 0, 5) + rec(0, 240, 0, 0) \
        + rec(3, 4, 1, 6)
    path = tmp_path / '00001.bin'
    path.write_bytes(data)
    assert detect_format(path) == 'nmnist_bin'
    # the y == 240 marker adds 2**13 us to every later event and is dropped
    assert rows(read_events(path)) == [(0x7FFFFF, 1, 2, 1), (5, 33, 0, 0),
                                       (6 + 8192, 3, 4, 1)]
    path.write_bytes(data[:-2])
    with pytest.raises(DataError) as info:
        read_events(path)
    assert info.value.offset == 15
    back = tmp_path / 'w.bin'
    write_nmnist_bin(back, make_events([7, 70000], [1, 2], [3, 4], [0, 1]))
    assert back.read_bytes() == rec(1, 3, 0, 7) + rec(2, 4, 1, 70000)


def test_numpy_event_files(tmp_path):
    ev = make_events([1, 2], [3, 4], [5, 6], [0, 1])
    np.save(tmp_path / 'a.npy', ev)
    np.savez(tmp_path / 'b.npz', t=[1, 2], x=[3, 4], y=[5, 6], p=[0, 1])
    assert rows(read_events(tmp_path / 'a.npy')) == rows(ev)
    assert rows(read_events(tmp_path / 'b.npz')) == rows(ev)
    np.save(tmp_path / 'plain.npy', np.zeros((2, 4)))
    with pytest.raises(DataError, match='structured'):
        read_events(tmp_path / 'plain.npy')
    np.savez(tmp_path / 'c.npz', t=[1], x=[1], y=[1])
    with pytest.raises(DataError, match="'p'"):
        read_events(tmp_path / 'c.npz')


def test_unknown_format_and_missing_file(tmp_path):
    (tmp_path / 'a.txt').write_text('hello')
    with pytest.raises(DataError, match='format'):
        read_events(tmp_path / 'a.txt')
    with pytest.raises(DataError, match='not found'):
        read_events(tmp_path / 'missing.aedat')


def test_shd_h5(tmp_path):
    h5py = pytest.importorskip('h5py')
    path = tmp_path / 'shd_test.h5'
    with h5py.File(path, 'w') as f:
        ft = h5py.vlen_dtype(np.float32)
        fu = h5py.vlen_dtype(np.uint16)
        times = f.create_dataset('spikes/times', (2, ), dtype=ft)
        units = f.create_dataset('spikes/units', (2, ), dtype=fu)
        times[0] = np.array([0.0, 0.5, 1.25], np.float32)
        units[0] = np.array([699, 0, 3], np.uint16)
        times[1] = np.array([0.001], np.float32)
        units[1] = np.array([10], np.uint16)
        f['labels'] = np.array([19, 0], np.uint16)
    samples, labels = read_spike_h5(path)
    assert labels.tolist() == [19, 0]
    assert rows(samples[0]) == [(0, 699, 0, 1), (500000, 0, 0, 1),
                                (1250000, 3, 0, 1)]
    assert rows(samples[1]) == [(1000, 10, 0, 1)]


def test_aedat4_corrupt_raises_data_error(tmp_path):
    pytest.importorskip('aedat')
    path = tmp_path / 'x.aedat4'
    path.write_bytes(b'#!AER-DAT4.0\r\n' + b'\x00' * 40)
    assert detect_format(path) == 'aedat4'
    with pytest.raises(DataError):
        read_events(path)
