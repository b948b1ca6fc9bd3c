"""A damaged data file stops ``bidl-train`` with one line naming it.

tests/datasets/test_fuzz_files.py and tests/datasets/test_fuzz_readers.py hold the readers
to "data or DataError"; this file checks what a user sees. For each on-disk
format a task config reads, a tiny valid dataset is written in the official
layout (the writers of tests/configs/test_task_configs_data.py), one file of it is
damaged (truncated, junk, bytes flipped, or a header declaring 2**40
elements), and the real ``bidl-train <task config> --cfg-options
...data_root=<dir>`` runs in a subprocess under a 3 GiB address-space cap.
Expected: exit code 2, stderr exactly one line ``bidl-train: error:
...`` that names the damaged file, no traceback anywhere, within the
timeout. A header declaring a size far beyond the file must be refused
before anything is allocated (the cap turns an attempt into MemoryError,
which is no DataError).

A run spends most of its time importing torch and mmengine, so the cases
run in two processes (tests/helpers/fuzz_cli_driver.py, one per core), each
calling ``bidl-train``'s ``main`` for its cases in turn and capturing file
descriptors 1 and 2 (so output of C code and DataLoader workers counts).
"""
import gzip
import importlib.util
import json
import os
import os.path as osp
import resource
import struct
import subprocess
import sys

import numpy as np
import numpy.lib.format as npy_format
import pytest

from helpers.task_data import (write_dvs_gesture, write_dvs_mnist,
                                    write_es_imagenet_release, write_imdb,
                                    write_jester, write_luna16,
                                    write_medmnist3d, write_mnist,
                                    write_n_mnist, write_shd_files)

from helpers.paths import REPO as ROOT
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
MEMORY_CAP = 3 << 30
TIMEOUT = 240  # seconds per run, on a loaded 2-core machine
PARALLEL = 2  # driver processes: one per core
DRIVER = osp.join(ROOT, 'tests', 'helpers', 'fuzz_cli_driver.py')
HUGE = 2 ** 40

pytestmark = pytest.mark.slow  # 12 runs in 2 processes


# -- damage -------------------------------------------------------------------

def truncate(path, keep=None):
    data = open(path, 'rb').read()
    keep = len(data) // 2 if keep is None else keep
    with open(path, 'wb') as f:
        f.write(data[:keep])
    return path


def junk(path, size=None):
    size = os.path.getsize(path) if size is None else size
    rng = np.random.default_rng(0)
    with open(path, 'wb') as f:
        f.write(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


def flip(path, offset, data):
    with open(path, 'r+b') as f:
        f.seek(offset)
        f.write(data)
    return path


def npy_declaring(shape, dtype='|u1', body=b'\0' * 96):
    """.npy bytes whose header declares ``shape`` over a tiny body."""
    import io
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(
        buf, dict(descr=dtype, fortran_order=False, shape=shape))
    return buf.getvalue() + body


def aedat31_capacity(path, capacity=2 ** 30):
    """First packet declares ``capacity`` events (8 bytes each)."""
    data = open(path, 'rb').read()
    head = data.index(b'#!END-HEADER\r\n') + len(b'#!END-HEADER\r\n')
    return flip(path, head + 16, struct.pack('<i', capacity))


def idx_gz_declaring(path):
    """MNIST images .gz whose header declares 2**40 pixels."""
    with gzip.open(path, 'rb') as f:
        data = f.read()
    header = bytes([0, 0, 8, 3]) + b''.join(
        n.to_bytes(4, 'big') for n in (2 ** 14, 2 ** 13, 2 ** 13))
    with gzip.open(path, 'wb') as f:
        f.write(header + data[16:])
    return path


def npz_member_declaring(path):
    """ES-ImageNet .npz whose ``pos`` array declares (2**40, 3)."""
    import zipfile
    with zipfile.ZipFile(path, 'w') as zf:
        zf.writestr('pos.npy', npy_declaring((HUGE, 3)))
        zf.writestr('neg.npy', npy_declaring((1, 3), body=b'\1\1\1'))
    return path


def npy_file_declaring(path):
    with open(path, 'wb') as f:
        f.write(npy_declaring((HUGE, 32, 32)))
    return path


def bad_utf8(path):
    return flip(path, 0, b'\xff\xfe\xfa')


# -- cases: (task config, writer, damage(data_root) -> path, options) --------

def _first(root, pattern):
    import glob
    return sorted(glob.glob(osp.join(root, pattern), recursive=True))[0]


CASES = {
    # N-MNIST .bin: the last event cut short
    'nmnist_bin_truncated': ('n_mnist', write_n_mnist, lambda r: truncate(
        osp.join(r, 'Train', '3', '00004.bin'), 998), {}),
    # AEDAT 3.1: a packet announcing 2**30 events (8 GiB) in a tiny file
    'aedat31_huge_packet': ('dvs_gesture', write_dvs_gesture,
                            lambda r: aedat31_capacity(osp.join(
                                r, 'DvsGesture',
                                'user01_fluorescent.aedat')), {}),
    # DVS128 Gesture labels CSV: junk bytes
    'gesture_labels_junk': ('dvs_gesture', write_dvs_gesture,
                            lambda r: junk(osp.join(
                                r, 'DvsGesture',
                                'user01_fluorescent_labels.csv')), {}),
    # DVS128 Gesture trial list naming a file outside the data root
    'gesture_trials_escape': ('dvs_gesture', write_dvs_gesture,
                              lambda r: _write(osp.join(
                                  r, 'DvsGesture', 'trials_to_train.txt'),
                                  b'../../../../etc/passwd\n'), {}),
    # AEDAT 2.0 (MNIST-DVS): random junk
    'aedat2_junk': ('dvs_mnist', write_dvs_mnist, lambda r: junk(_first(
        r, 'grabbed_data4/scale16/*0001.aedat'), 8 * 50 + 3), {}),
    # SHD .h5: random junk
    'shd_h5_junk': ('shd', write_shd_files, lambda r: junk(
        osp.join(r, 'shd_train.h5')), {}),
    # MNIST IDX (.gz): header declaring 2**40 pixels
    'idx_gz_huge': ('mnist_rate', write_mnist, lambda r: idx_gz_declaring(
        osp.join(r, 'train-images-idx3-ubyte.gz')), {}),
    # ES-ImageNet .npz: a member declaring (2**40, 3), read in the loop
    'es_imagenet_npz_huge': ('es_imagenet', write_es_imagenet_release,
                             lambda r: npz_member_declaring(_first(
                                 r, 'train/**/*.npz')),
                             {'train_dataloader.persistent_workers': False,
                              'val_dataloader.persistent_workers': False,
                              'test_dataloader.persistent_workers': False}),
    # LUNA16 patch .npy declaring 2**40 x 32 x 32, read in the loop by a
    # DataLoader worker process (the error must survive the worker)
    'luna16_npy_huge_in_worker': ('luna16_cls', write_luna16,
                                  lambda r: npy_file_declaring(_first(
                                      r, 'train/0_*.npy')),
                                  {'train_dataloader.num_workers': 1}),
    # MedMNIST .npz: truncated
    'medmnist_npz_truncated': ('medmnist3d', write_medmnist3d,
                               lambda r: truncate(
                                   osp.join(r, 'nodulemnist3d.npz')), {}),
    # aclImdb review: not UTF-8
    'imdb_text_bad_utf8': ('imdb', write_imdb, lambda r: bad_utf8(_first(
        r, 'aclImdb/train/pos/*.txt')), {}),
    # Jester split CSV: random junk (not UTF-8, no "id;label" rows)
    'jester_csv_junk': ('jester', write_jester, lambda r: junk(
        osp.join(r, 'jester-v1-train.csv'), 300), {}),
}


def _write(path, data):
    with open(path, 'wb') as f:
        f.write(data)
    return path


def _cap_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def _case_spec(name, base):
    """Write the case's damaged data; its ``bidl-train`` command line."""
    config, writer, damage, extra = CASES[name]
    data_root = base / name / 'data'
    writer(data_root)
    damaged = damage(str(data_root))
    options = {f'{loader}.dataset.data_root': str(data_root)
               for loader in LOADERS}
    options.update({f'{loader}.num_workers': 0 for loader in LOADERS})
    options['train_cfg.max_epochs'] = 1
    options.update(extra)
    argv = [osp.join(ROOT, 'configs', f'{config}.py'), '--work-dir',
            str(base / name / 'work'), '--cfg-options'] + [
                f'{k}={v}' for k, v in options.items()]
    return dict(case=name, argv=argv, cwd=str(base / name),
                timeout=TIMEOUT, damaged=damaged)


def _drive(base, spec, part):
    """Start a driver process (memory-capped) for ``spec``."""
    spec_path = base / f'spec{part}.json'
    spec_path.write_text(json.dumps(spec))
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    proc = subprocess.Popen(
        [sys.executable, DRIVER, str(spec_path),
         str(base / f'result{part}.json')], cwd=str(base), env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_cap_memory)
    return proc, base / f'result{part}.json'


@pytest.fixture(scope='module')
def results(tmp_path_factory):
    """Every case's run: the cases split over PARALLEL driver processes."""
    base = tmp_path_factory.mktemp('fuzz_cli')
    spec = [_case_spec(name, base) for name in sorted(CASES)
            if not _missing_extra(name)]
    drivers = [_drive(base, spec[part::PARALLEL], part)
               for part in range(PARALLEL)]
    found = {}
    for proc, result in drivers:
        _, stderr = proc.communicate(timeout=TIMEOUT * len(spec))
        assert proc.returncode == 0, stderr[-3000:]
        found.update({item['case']: item
                      for item in json.loads(result.read_text())})
    return found


#: cases whose files need an optional package (SHD is HDF5: [events])
NEEDS = {'shd_h5_junk': 'h5py'}


def _missing_extra(name):
    module = NEEDS.get(name)
    return module if module and not importlib.util.find_spec(module) \
        else None


@pytest.mark.parametrize('name', sorted(CASES))
def test_damaged_file_stops_training_with_one_line(results, name):
    if _missing_extra(name):
        pytest.skip(f'needs {_missing_extra(name)} (an optional extra)')
    r = results[name]
    report = (f'{name}: rc {r["rc"]}\n--- stderr ---\n{r["stderr"][-3000:]}'
              f'\n--- stdout ---\n{r["stdout"][-1500:]}')
    assert not r['timeout'], report
    assert r['rc'] == 2, report
    assert 'Traceback' not in r['stderr'] + r['stdout'], report
    lines = r['stderr'].strip().splitlines()
    assert len(lines) == 1, report
    assert lines[0].startswith('bidl-train: error: '), report
    assert r['damaged'] in lines[0], report
