"""Paths named by data files stay inside the data root.

Annotation files come with a download, so a line such as ``../../x`` or
``/etc/passwd``, or a symbolic link inside the data root that leads out of
it, must be refused with a DataError naming the annotation file and the
line, never followed. A data root that is itself a symbolic link works.

Each dataset case writes a tiny valid copy of the official layout (the
writers of tests/configs/test_task_configs_data.py and tests/helpers/layout_writers.py),
plants a file OUTSIDE the data root that the dataset would accept as valid
data (so following the path would succeed silently), then points an
annotation entry or a link at it.
"""
import os
import shutil

import numpy as np
import pytest

from bidl_train.datasets.paths import (check_relative, resolve_inside,
                                       scan_inside)
from bidl_train.errors import DataError
from helpers.layout_writers import write_es_imagenet, write_recording


# -- the helper ---------------------------------------------------------------

@pytest.mark.parametrize('rel', ['../x', 'a/../../x', '/etc/passwd', '',
                                 'a\0b', '..'])
def test_lexical_escapes_are_refused_with_file_and_line(rel):
    with pytest.raises(DataError) as err:
        check_relative(rel, source='/d/list.txt', line=7)
    assert str(err.value).startswith('/d/list.txt: line 7: ')


@pytest.mark.parametrize('rel', ['a.aedat', 'sub/a.aedat', 'a/../b.aedat',
                                 './c.npz'])
def test_relative_paths_inside_pass(tmp_path, rel):
    assert resolve_inside(tmp_path, rel) == os.path.join(tmp_path, rel)


def test_links_inside_allowed_links_out_refused(tmp_path):
    root, outside = tmp_path / 'root', tmp_path / 'outside'
    root.mkdir()
    outside.mkdir()
    (root / 'real.bin').write_bytes(b'x')
    (outside / 'secret').write_bytes(b'y')
    os.symlink(root / 'real.bin', root / 'inner_link.bin')
    os.symlink(outside / 'secret', root / 'out_link.bin')
    os.symlink(outside, root / 'out_dir')
    assert resolve_inside(root, 'inner_link.bin').endswith('inner_link.bin')
    for rel in ('out_link.bin', 'out_dir/secret'):
        with pytest.raises(DataError, match='outside the data root'):
            resolve_inside(root, rel, source='list', line=2)
    with pytest.raises(DataError, match='out_link.bin'):
        scan_inside(root, root)
    # a data root that is itself a link: its files are inside
    (root / 'out_link.bin').unlink()
    (root / 'out_dir').unlink()
    os.symlink(root, tmp_path / 'root_link')
    linked = tmp_path / 'root_link'
    assert [n for n, _ in scan_inside(linked, linked)] == [
        'inner_link.bin', 'real.bin']
    assert resolve_inside(linked, 'inner_link.bin') == os.path.join(
        linked, 'inner_link.bin')


# -- DVS128 Gesture: trial lists and label CSVs ------------------------------

def _gesture(root):
    folder = root / 'DvsGesture'
    folder.mkdir(parents=True)
    write_recording(folder, 'user01_fluorescent',
                    [(1, 1000, 200_000, 300), (4, 300_000, 500_000, 300)])
    (folder / 'trials_to_train.txt').write_text('user01_fluorescent.aedat\n')
    (folder / 'trials_to_test.txt').write_text('user01_fluorescent.aedat\n')
    return folder


def _build_gesture(root):
    from bidl_train.datasets.dvs import DVS128Gesture
    return DVS128Gesture(str(root), split='train', cache=False,
                         representation=dict(type='EventFrames', T=2,
                                             size=32))


def _outside_recording(tmp_path):
    """A valid recording + labels outside the data root."""
    out = tmp_path / 'outside'
    out.mkdir()
    write_recording(out, 'user99_lab', [(2, 1000, 200_000, 300)])
    return out


@pytest.mark.parametrize('kind', ['relative', 'absolute'])
def test_gesture_trial_list_entry_outside_is_refused(tmp_path, kind):
    folder = _gesture(tmp_path / 'data')
    out = _outside_recording(tmp_path)
    entry = (str(out / 'user99_lab.aedat') if kind == 'absolute' else
             '../../outside/user99_lab.aedat')
    trials = folder / 'trials_to_train.txt'
    trials.write_text(f'user01_fluorescent.aedat\n\n{entry}\n')
    with pytest.raises(DataError) as err:
        _build_gesture(tmp_path / 'data')
    assert str(err.value).startswith(f'{trials}: line 3: ')
    assert entry in str(err.value)


def test_gesture_recording_link_out_of_root_is_refused(tmp_path):
    folder = _gesture(tmp_path / 'data')
    out = _outside_recording(tmp_path)
    os.symlink(out / 'user99_lab.aedat', folder / 'user02_lab.aedat')
    shutil.copy(out / 'user99_lab_labels.csv', folder / 'user02_lab_labels.csv')
    trials = folder / 'trials_to_train.txt'
    trials.write_text('user01_fluorescent.aedat\nuser02_lab.aedat\n')
    with pytest.raises(DataError) as err:
        _build_gesture(tmp_path / 'data')
    assert str(err.value).startswith(f'{trials}: line 2: ')
    assert 'symbolic link' in str(err.value)


def test_gesture_labels_link_out_of_root_is_refused(tmp_path):
    folder = _gesture(tmp_path / 'data')
    out = _outside_recording(tmp_path)
    labels = folder / 'user01_fluorescent_labels.csv'
    labels.unlink()
    os.symlink(out / 'user99_lab_labels.csv', labels)
    with pytest.raises(DataError, match='line 1: .*_labels.csv.*outside'):
        _build_gesture(tmp_path / 'data')


def test_gesture_data_root_that_is_a_link_works(tmp_path):
    _gesture(tmp_path / 'data')
    os.symlink(tmp_path / 'data', tmp_path / 'linked')
    assert len(_build_gesture(tmp_path / 'linked')) == 2


# -- ES-ImageNet label lists -------------------------------------------------

def _es_entries(names):
    ev = np.array([[120, 120, 1], [121, 121, 2]])
    return [(n, 0, 254, 190, ev, ev) for n in names]


def test_es_imagenet_label_list_escape_is_refused(tmp_path):
    from bidl_train.datasets.es_imagenet import ESImageNet
    root = tmp_path / 'data'
    write_es_imagenet(root, _es_entries(['class0/class0_1.npz']))
    # a valid sample outside the data root
    write_es_imagenet(tmp_path / 'other', _es_entries(['x.npz']))
    label = root / 'trainlabel.txt'
    label.write_text(label.read_text()
                     + '../../other/train/x.npz 0 254 190\n')
    with pytest.raises(DataError) as err:
        ESImageNet(str(root))
    assert str(err.value).startswith(f'{label}: line 2: ')


def test_es_imagenet_link_out_is_refused_when_read(tmp_path):
    from bidl_train.datasets.es_imagenet import ESImageNet
    root = tmp_path / 'data'
    write_es_imagenet(root, _es_entries(['class0/class0_1.npz',
                                         'class0/class0_2.npz']))
    write_es_imagenet(tmp_path / 'other', _es_entries(['x.npz']))
    target = root / 'train' / 'class0' / 'class0_2.npz'
    target.unlink()
    os.symlink(tmp_path / 'other' / 'train' / 'x.npz', target)
    ds = ESImageNet(str(root))
    assert ds[0]['inputs'].shape == (8, 2, 224, 224)
    with pytest.raises(DataError) as err:
        ds[1]
    assert str(err.value).startswith(f'{root / "trainlabel.txt"}: line 2: ')


# -- Jester CSVs ---------------------------------------------------------------

def _jester(root):
    from bidl_train.datasets.synthetic.video import make_synthetic_jester
    make_synthetic_jester(str(root), num_train_per_class=1,
                          num_val_per_class=1, num_frames=4, height=16,
                          width=16)
    return root


def _first_clip(root):
    ann = root / 'jester-v1-train.csv'
    first = ann.read_text().splitlines()[0]
    return ann, first.split(';')


def test_jester_csv_escape_is_refused(tmp_path):
    from bidl_train.datasets.video import Jester
    root = _jester(tmp_path / 'data')
    ann, (clip, label) = _first_clip(root)
    shutil.copytree(root / '20bn-jester-v1' / clip, tmp_path / 'stolen')
    ann.write_text(ann.read_text() + f'../../stolen;{label}\n')
    lines = len(ann.read_text().splitlines())
    with pytest.raises(DataError) as err:
        Jester(str(root), class_order='file', T=2)
    assert str(err.value).startswith(f'{ann}: line {lines}: ')


def test_jester_clip_and_frame_links_out_are_refused(tmp_path):
    from bidl_train.datasets.video import Jester
    root = _jester(tmp_path / 'data')
    ann, (clip, _) = _first_clip(root)
    clip_dir = root / '20bn-jester-v1' / clip
    shutil.copytree(clip_dir, tmp_path / 'stolen')
    shutil.rmtree(clip_dir)
    os.symlink(tmp_path / 'stolen', clip_dir)
    ds = Jester(str(root), class_order='file', T=2, test_mode=True)
    with pytest.raises(DataError) as err:
        ds[0]
    assert str(err.value).startswith(f'{ann}: line 1: ')
    # a single frame linked out of an otherwise normal clip folder
    clip_dir.unlink()
    shutil.copytree(tmp_path / 'stolen', clip_dir)
    frame = sorted(clip_dir.iterdir())[0]
    frame.unlink()
    os.symlink(sorted((tmp_path / 'stolen').iterdir())[0], frame)
    with pytest.raises(DataError, match='symbolic link'):
        # T = 4 of the 4 frames: the clip reads every frame
        Jester(str(root), class_order='file', T=4, test_mode=True,
               stride=1.0)[0]


# -- scanned layouts: a link among the files --------------------------------

def _link_out(tmp_path, folder, name, make_target):
    out = tmp_path / 'outside'
    out.mkdir(exist_ok=True)
    target = out / name
    make_target(target)
    os.symlink(target, folder / name)
    return folder / name


def test_event_class_folder_link_out_is_refused(tmp_path):
    from bidl_train.datasets.dvs import NMNIST
    from helpers.layout_writers import nmnist_bytes
    root = tmp_path / 'data'
    for split in ('Train', 'Test'):
        for d in range(10):
            (root / split / str(d)).mkdir(parents=True)
            (root / split / str(d) / '1.bin').write_bytes(
                nmnist_bytes([(5, 1, 2, 1), (9, 3, 4, 0)]))
    link = _link_out(tmp_path, root / 'Train' / '3', '2.bin',
                     lambda p: p.write_bytes(nmnist_bytes([(1, 1, 1, 1)])))
    with pytest.raises(DataError, match='2.bin.*outside the data root'):
        NMNIST(str(root), cache=False)
    # the data root itself may be a link
    link.unlink()
    os.symlink(root, tmp_path / 'linked')
    assert len(NMNIST(str(tmp_path / 'linked'), cache=False)) == 10


def test_volume_and_text_folder_links_out_are_refused(tmp_path):
    from bidl_train.datasets.text import IMDB
    from bidl_train.datasets.volume import Luna16Cls
    root = tmp_path / 'luna'
    (root / 'train').mkdir(parents=True)
    np.save(root / 'train' / '0_a.npy', np.zeros((8, 32, 32), np.uint8))
    _link_out(tmp_path, root / 'train', '1_b.npy',
              lambda p: np.save(p, np.ones((8, 32, 32), np.uint8)))
    with pytest.raises(DataError, match='1_b.npy.*outside the data root'):
        Luna16Cls(str(root))

    imdb = tmp_path / 'imdb'
    for cls in ('pos', 'neg'):
        (imdb / 'aclImdb' / 'train' / cls).mkdir(parents=True)
        (imdb / 'aclImdb' / 'train' / cls / '0_7.txt').write_text('fine')
    _link_out(tmp_path, imdb / 'aclImdb' / 'train' / 'pos', '1_8.txt',
              lambda p: p.write_text('a secret'))
    with pytest.raises(DataError, match='1_8.txt.*outside the data root'):
        IMDB(str(imdb), vocab_size=5, max_len=4,
             cache_dir=str(tmp_path / 'c'))


def test_single_file_datasets_refuse_a_link_out(tmp_path):
    from bidl_train.datasets.static import MNIST
    from bidl_train.datasets.synthetic.digits import make_synthetic_digits
    out = tmp_path / 'outside'
    make_synthetic_digits(str(out), num_train=2, num_test=2)
    root = tmp_path / 'data'
    root.mkdir()
    for name in os.listdir(out):
        os.symlink(out / name, root / name)
    with pytest.raises(DataError, match='outside the data root'):
        MNIST(str(root))
    # the same files through a linked data root are fine
    os.symlink(out, tmp_path / 'linked')
    assert len(MNIST(str(tmp_path / 'linked'))) == 2
