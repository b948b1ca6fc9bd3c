"""Damaging valid files for the reader fuzz tests: a hypothesis strategy of
damages (truncate, flip bits, splice bytes in), applying one, and the
contract every reader is held to."""
import tracemalloc

from hypothesis import strategies as st

from bidl_train.datasets.io import EVENT_DTYPE, read_events
from bidl_train.errors import DataError

MEMORY_SLACK = 8 * 2**20


def check_read(path, data):
    path.write_bytes(data)
    tracemalloc.start()
    try:
        events = read_events(str(path))
    except DataError as err:
        assert str(path) in str(err) or path.name in str(err), str(err)
        return
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak <= 64 * len(data) + MEMORY_SLACK, (
            f'{path.name}: peak {peak} bytes for a {len(data)}-byte file')
    assert events.dtype == EVENT_DTYPE
    assert events.ndim == 1


damage = st.one_of(
    st.tuples(st.just('truncate'), st.floats(0, 1)),
    st.tuples(st.just('flip'), st.lists(st.tuples(st.floats(0, 1),
                                                  st.integers(0, 7)),
                                        min_size=1, max_size=8)),
    st.tuples(st.just('splice'), st.tuples(st.floats(0, 1),
                                           st.binary(min_size=1,
                                                     max_size=64))),
)


def apply_damage(blob, how):
    kind, arg = how
    if kind == 'truncate':
        return blob[:int(arg * len(blob))]
    if kind == 'flip':
        data = bytearray(blob)
        for where, bit in arg:
            i = min(int(where * len(data)), len(data) - 1)
            data[i] ^= 1 << bit
        return bytes(data)
    where, junk = arg
    i = int(where * len(blob))
    return blob[:i] + junk + blob[i:]
