"""The sample cache stores whole-number frames as small integers and gives
back exactly what was saved, in the saved dtype."""
import os

import numpy as np
import pytest

from bidl_train.datasets.cache import SampleCache
from bidl_train.errors import DataError


@pytest.mark.parametrize('values, stored', [
    ([0, 3, 255], np.uint8),        # spike counts of a sparse frame
    ([0, 256, 65535], np.uint16),   # counts of a long integration window
    ([0, 0.5, 2], np.float32),      # not whole numbers: kept
    ([-1, 0, 2], np.float32),       # negative (e.g. ON minus OFF): kept
    ([0, 70000, 1], np.float32),    # too large for uint16: kept
])
def test_round_trip_is_exact_and_compact(tmp_path, values, stored):
    array = np.array(values, np.float32).reshape(3, 1)
    cache = SampleCache(tmp_path, dict(name='t'))
    cache.save(0, array)
    cache.save_index(num_samples=1)
    on_disk = np.load(os.path.join(cache.dir, '000000.npy'))
    assert on_disk.dtype == stored
    # a new process opens the complete entry and restores float32
    reopened = SampleCache(tmp_path, dict(name='t'))
    assert reopened.load_index() is not None
    back = reopened.load(0)
    assert back.dtype == np.float32 and np.array_equal(back, array)


def test_entries_from_before_the_checksums_are_rebuilt(tmp_path):
    """Caches written before compaction hold float32 files and no dtype;
    nor checksums, so nothing shows whether they were damaged since."""
    cache = SampleCache(tmp_path, dict(name='old'))
    os.makedirs(cache.dir)
    np.save(os.path.join(cache.dir, '000000.npy'),
            np.array([1.0, 2.0], np.float32))
    with open(os.path.join(cache.dir, 'index.json'), 'w') as f:
        f.write('{"params": {"name": "old"}, "num_samples": 1}')
    assert cache.load_index() is None
    assert 'older bidl-train' in cache.rebuild_reason


def test_one_dtype_per_entry(tmp_path):
    cache = SampleCache(tmp_path, dict(name='t'))
    cache.save(0, np.zeros(2, np.float32))
    with pytest.raises(DataError, match='one dtype'):
        cache.save(1, np.zeros(2, np.float64))
