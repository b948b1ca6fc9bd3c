"""Fuzz the non-event readers: IDX images, volumes, text, video, SHD.

Same contract as the event readers (``tests/datasets/test_fuzz_readers.py``): a
damaged file yields data or ``DataError`` naming the file, in bounded time.
Each case writes a small valid dataset in its published layout, then
damages one file of it and reads every sample. The time bound is an alarm
of HANG_SECONDS rather than hypothesis' deadline: libhdf5 itself can spend
over ten seconds on some damaged files before reporting them.
"""
import pickle
import signal

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bidl_train.errors import DataError

from helpers.fuzzing import apply_damage, damage


def _idx(root):
    from bidl_train.datasets.static import write_idx
    path = root / 'train-images-idx3-ubyte'
    write_idx(str(path), np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4,
                                                                      4))
    return path


def _read_idx(root, path):
    from bidl_train.datasets.static import read_idx
    return read_idx(str(path))


def _volume_folder(root):
    for cls in ('a', 'b'):
        (root / cls).mkdir()
        np.save(root / cls / 'v.npy', np.full((4, 6, 6), 7, np.uint8))
    return root / 'a' / 'v.npy'


def _read_volume_folder(root, path):
    from bidl_train.datasets.volume import VolumeFolder
    ds = VolumeFolder(str(root))
    return [ds[i] for i in range(len(ds))]


def _csv(root):
    path = root / 'train.csv'
    path.write_text('label,text\npos,a fine film\nneg,"dull, slow"\n')
    return path


def _read_csv(root, path):
    from bidl_train.datasets.text import TextClassificationCSV
    ds = TextClassificationCSV(str(root), classes=['neg', 'pos'],
                               vocab_size=10, max_len=4,
                               cache_dir=str(root / 'cache'))
    return [ds[i] for i in range(len(ds))]


def _imdb(root):
    for split in ('train', 'test'):
        for label in ('pos', 'neg'):
            folder = root / 'aclImdb' / split / label
            folder.mkdir(parents=True)
            (folder / '0_7.txt').write_text(f'a {label} review<br />ok')
    return root / 'aclImdb' / 'train' / 'pos' / '0_7.txt'


def _read_imdb(root, path):
    from bidl_train.datasets.text import IMDB
    ds = IMDB(str(root), split='train', vocab_size=10, max_len=6,
              cache_dir=str(root / 'cache'))
    return [ds[i] for i in range(len(ds))]


def _rgb_gesture(root):
    path = root / 'train.pkl'
    data = np.zeros((2, 3, 3, 4, 4), np.uint8)
    with open(path, 'wb') as f:
        pickle.dump([data, np.array([0, 1])], f)
    return path


def _read_rgb_gesture(root, path):
    from bidl_train.datasets.video import RGBGesture
    ds = RGBGesture(str(root), ann_file='train.pkl')
    return [ds[i] for i in range(len(ds))]


def _jpeg(root):
    path = root / '00001.jpg'
    cv2.imwrite(str(path), np.full((8, 8, 3), 99, np.uint8))
    return path


def _read_jpeg(root, path):
    from bidl_train.datasets.video import read_frame
    return read_frame(str(path))


def _shd(root):
    h5py = pytest.importorskip('h5py')
    path = root / 'shd.h5'
    vlen_f = h5py.vlen_dtype(np.float32)
    vlen_u = h5py.vlen_dtype(np.uint16)
    with h5py.File(path, 'w') as f:
        times = f.create_dataset('spikes/times', (2, ), dtype=vlen_f)
        units = f.create_dataset('spikes/units', (2, ), dtype=vlen_u)
        times[0], times[1] = np.array([0.1, 0.2], np.float32), np.array(
            [0.3], np.float32)
        units[0], units[1] = np.array([3, 4], np.uint16), np.array(
            [5], np.uint16)
        f.create_dataset('labels', data=np.array([1, 2], np.uint16))
    return path


def _read_shd(root, path):
    from bidl_train.datasets.io import read_spike_h5
    return read_spike_h5(str(path))


CASES = {
    'idx': (_idx, _read_idx),
    'volume_npy': (_volume_folder, _read_volume_folder),
    'text_csv': (_csv, _read_csv),
    'imdb_txt': (_imdb, _read_imdb),
    'rgb_gesture_pkl': (_rgb_gesture, _read_rgb_gesture),
    'jpeg': (_jpeg, _read_jpeg),
    'shd_h5': (_shd, _read_shd),
}


HANG_SECONDS = 60


def _hang(signum, frame):
    raise TimeoutError(f'reader still busy after {HANG_SECONDS} s')


def check_read(tmp_path_factory, case, transform):
    setup, read = CASES[case]
    root = tmp_path_factory.mktemp(case)
    target = setup(root)
    target.write_bytes(transform(target.read_bytes()))
    previous = signal.signal(signal.SIGALRM, _hang)
    signal.alarm(HANG_SECONDS)
    try:
        read(root, target)
    except DataError as err:
        assert target.name in str(err), str(err)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize('case', sorted(CASES))
def test_valid_files_read(tmp_path_factory, case):
    check_read(tmp_path_factory, case, lambda blob: blob)


@pytest.mark.parametrize('case', sorted(CASES))
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(how=damage)
def test_damaged_file_gives_data_or_data_error(tmp_path_factory, case, how):
    check_read(tmp_path_factory, case, lambda blob: apply_damage(blob, how))


@pytest.mark.parametrize('case', sorted(CASES))
@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.binary(max_size=256))
def test_random_bytes_give_data_or_data_error(tmp_path_factory, case, junk):
    check_read(tmp_path_factory, case, lambda blob: junk)
