"""The sample cache never serves wrong data silently.

* A cache file damaged or changed after it was written (junk, truncated,
  another shape or dtype, other values of the same shape, pickled objects)
  is refused with a DataError naming the file and the folder to delete.
* An ``index.json`` that is unreadable or edited makes the entry be rebuilt
  from the source recordings, with a one-line warning.
* A source recording rewritten in place with its size and mtime restored
  (``os.utime``) selects a new entry: the samples follow the new content.

The expected samples come from the same dataset read with ``cache=False``
(straight from the recordings), independent of the cache.
"""
import json
import os
import pickle
import time

import numpy as np
import pytest

import bidl_train.datasets.dvs as dvs
from bidl_train.datasets.cache import SampleCache
from bidl_train.datasets.dvs import EventFolder
from bidl_train.errors import DataError
from helpers.layout_writers import nmnist_bytes

REP = dict(type='EventFrames', T=2, split_by='number')


def _events(seed, n=40):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, 100_000, n))
    return [(int(a), int(b), int(c), int(d)) for a, b, c, d in zip(
        t, rng.integers(0, 34, n), rng.integers(0, 34, n),
        rng.integers(0, 2, n))]


@pytest.fixture
def root(tmp_path):
    """EventFolder layout of N-MNIST ``.bin`` files, two per class."""
    for c, cls in enumerate(('a', 'b')):
        folder = tmp_path / 'data' / 'train' / cls
        folder.mkdir(parents=True)
        for i in range(2):
            (folder / f'{i}.bin').write_bytes(nmnist_bytes(
                _events(10 * c + i)))
    return tmp_path / 'data'


def _dataset(root, cache=True):
    return EventFolder(str(root), sensor_size=(34, 34), representation=REP,
                       cache=cache)


def _uncached(root):
    ds = _dataset(root, cache=False)
    return [ds[i]['inputs'].numpy() for i in range(len(ds))]


@pytest.fixture
def warnings_(monkeypatch):
    """The WARNING lines the event datasets log."""
    seen = []

    def record(msg, logger=None, level=None):
        if level is not None and level >= 30:
            seen.append(msg)
    monkeypatch.setattr(dvs, 'print_log', record)
    return seen


def _sample_file(ds, i=1):
    return os.path.join(ds._cache.dir, f'{i:06d}.npy')


class _Marker:
    """Unpickling it would create a file: the proof of code execution."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


def _damage(path, how, tmp_path):
    data = open(path, 'rb').read()
    original = np.load(path)
    if how == 'junk':
        data = os.urandom(len(data))
    elif how == 'truncated':
        data = data[:len(data) // 2]
    elif how == 'empty':
        data = b''
    elif how in ('shape', 'dtype', 'values', 'pickle'):
        if how == 'shape':
            arr = np.zeros((3, 2, 34, 34), original.dtype)
        elif how == 'dtype':
            arr = original.astype(np.float64)
        elif how == 'values':  # same shape, dtype and size: only a
            arr = original.copy()  # checksum can tell
            arr.flat[0] += 1
        else:
            arr = np.array([_Marker(str(tmp_path / 'pwned'))], object)
        np.save(path, arr, allow_pickle=True)
        return
    with open(path, 'wb') as f:
        f.write(data)


@pytest.mark.parametrize('how', ['junk', 'truncated', 'empty', 'shape',
                                 'dtype', 'values', 'pickle'])
def test_changed_sample_file_is_refused(root, tmp_path, how):
    ds = _dataset(root)
    expected = _uncached(root)
    path = _sample_file(ds)
    _damage(path, how, tmp_path)
    reopened = _dataset(root)  # a new run finds the complete entry
    np.testing.assert_array_equal(reopened[0]['inputs'].numpy(),
                                  expected[0])
    with pytest.raises(DataError) as err:
        reopened[1]
    message = str(err.value)
    assert message.startswith(f'{path}: ') and '\n' not in message
    assert f'delete the folder {ds._cache.dir}' in message
    assert not (tmp_path / 'pwned').exists()


@pytest.mark.parametrize('edit', ['junk', 'dtype', 'labels', 'samples'])
def test_edited_index_rebuilds_the_entry_with_a_warning(root, edit,
                                                        warnings_):
    ds = _dataset(root)
    index_path = os.path.join(ds._cache.dir, 'index.json')
    if edit == 'junk':
        with open(index_path, 'w') as f:
            f.write('{"params": ')
    else:
        index = json.load(open(index_path))
        if edit == 'dtype':  # samples would come back as float64
            index['dtype'] = '<f8'
        elif edit == 'labels':
            index['labels'] = index['labels'][::-1]
        else:  # make a damaged sample look valid
            index['samples']['1'] = index['samples']['0']
        with open(index_path, 'w') as f:
            json.dump(index, f)
    # a damaged sample that the rebuild must replace
    with open(_sample_file(ds), 'wb') as f:
        f.write(b'junk')
    rebuilt = _dataset(root)
    assert len(warnings_) == 1 and 'rebuilding the sample cache' in \
        warnings_[0] and '\n' not in warnings_[0]
    for i, want in enumerate(_uncached(root)):
        got = rebuilt[i]['inputs'].numpy()
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)
    # the rebuilt entry is complete: the next run uses it without warning
    warnings_.clear()
    _dataset(root)
    assert warnings_ == []


def test_source_rewritten_with_size_and_mtime_restored(root):
    path = root / 'train' / 'b' / '1.bin'
    stale = _dataset(root)[3]['inputs'].numpy()
    st = os.stat(path)
    time.sleep(0.02)  # past the file system's clock tick
    new = nmnist_bytes(_events(99))
    assert len(new) == st.st_size
    path.write_bytes(new)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_mtime_ns == st.st_mtime_ns
    assert os.stat(path).st_size == st.st_size
    fresh = _uncached(root)[3]
    assert not np.array_equal(fresh, stale)
    np.testing.assert_array_equal(_dataset(root)[3]['inputs'].numpy(),
                                  fresh)


def test_sample_cache_round_trip_and_unknown_index(tmp_path):
    cache = SampleCache(tmp_path, dict(name='t'))
    cache.save(0, np.arange(6, dtype=np.float32).reshape(2, 3))
    cache.save_index(num_samples=1)
    reopened = SampleCache(tmp_path, dict(name='t'))
    assert reopened.load_index() is not None
    np.testing.assert_array_equal(reopened.load(0),
                                  np.arange(6).reshape(2, 3))
    with pytest.raises(DataError, match='not in this cache entry'):
        reopened.load(1)


def test_pickled_index_is_not_unpickled(tmp_path):
    """index.json is parsed as JSON only: a pickle there is junk."""
    cache = SampleCache(tmp_path, dict(name='t'))
    cache.save(0, np.zeros(2, np.float32))
    cache.save_index(num_samples=1)
    with open(os.path.join(cache.dir, 'index.json'), 'wb') as f:
        pickle.dump(_Marker(str(tmp_path / 'pwned')), f)
    reopened = SampleCache(tmp_path, dict(name='t'))
    assert reopened.load_index() is None
    assert 'unreadable' in reopened.rebuild_reason
    assert not (tmp_path / 'pwned').exists()
