"""Fuzz the event readers: damaged files give data or our own error.

Each example starts from a valid file written in a published layout, then
truncates it, flips bits or splices random bytes into it. The reader must
either return a well-formed event array or raise ``DataError`` naming the
file; it must not hang (hypothesis deadline) and must not allocate more than
a bounded multiple of the file size (a corrupt header claiming a billion
events must not be believed).
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bidl_train.datasets.io import (make_events, read_events,
                                    write_aedat2_dvs128, write_aedat31,
                                    write_nmnist_bin)
from bidl_train.errors import DataError
from helpers.fuzzing import apply_damage, check_read, damage

N = 300
_rng = np.random.default_rng(0)
EVENTS = make_events(
    np.cumsum(_rng.integers(1, 50, N)), _rng.integers(0, 34, N),
    _rng.integers(0, 34, N), _rng.integers(0, 2, N))


def _write_npz(path, ev):
    np.savez(path, t=ev['t'], x=ev['x'], y=ev['y'], p=ev['p'])


WRITERS = {
    'sample.aedat3.aedat': lambda p: write_aedat31(p, EVENTS,
                                                   packet_size=64),
    'sample.aedat2.aedat': lambda p: write_aedat2_dvs128(p, EVENTS),
    'sample.bin': lambda p: write_nmnist_bin(p, EVENTS),
    'sample.npy': lambda p: np.save(p, EVENTS),
    'sample.npz': lambda p: _write_npz(p, EVENTS),
}

#: memory a reader may use beyond a generous multiple of the file size
@pytest.fixture(scope='module')
def originals(tmp_path_factory):
    folder = tmp_path_factory.mktemp('originals')
    blobs = {}
    for name, write in WRITERS.items():
        path = folder / name
        write(str(path))
        blobs[name] = path.read_bytes()
    return blobs


def test_originals_read_back(originals, tmp_path):
    for name, blob in originals.items():
        path = tmp_path / name
        path.write_bytes(blob)
        events = read_events(str(path))
        assert len(events) == N, name


@pytest.mark.parametrize('name', sorted(WRITERS))
@settings(max_examples=40, deadline=2000,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(how=damage)
def test_damaged_file_gives_data_or_data_error(originals, tmp_path, name,
                                               how):
    check_read(tmp_path / name, apply_damage(originals[name], how))


@pytest.mark.parametrize('name', sorted(WRITERS))
@settings(max_examples=20, deadline=2000,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.binary(max_size=512))
def test_random_bytes_give_data_or_data_error(tmp_path, name, junk):
    check_read(tmp_path / name, junk)


def test_header_claiming_huge_packet_is_refused(originals, tmp_path):
    """An AEDAT 3.1 packet header claiming 2**30 events is not believed."""
    blob = bytearray(originals['sample.aedat3.aedat'])
    start = blob.index(b'#!END-HEADER\r\n') + len(b'#!END-HEADER\r\n')
    # eventCapacity and eventNumber: int32 at bytes 16 and 20 of the header
    blob[start + 16:start + 20] = (2**30).to_bytes(4, 'little')
    blob[start + 20:start + 24] = (2**30).to_bytes(4, 'little')
    path = tmp_path / 'huge.aedat'
    with pytest.raises(DataError, match='huge.aedat'):
        check_read(path, bytes(blob))
        read_events(str(path))
