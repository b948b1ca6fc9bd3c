"""Tiny datasets in each task config's official on-disk layout
(shared/FORMATS.md): ``write_<task>(root)`` fills ``root`` and returns the
folder a user would give as data_root."""
import gzip
import os
import os.path as osp
import pickle

import numpy as np

from bidl_train.datasets.dvs import CIFAR10_CLASSES
from bidl_train.datasets.synthetic.digits import make_synthetic_digits
from bidl_train.datasets.synthetic.text import make_synthetic_reviews
from bidl_train.datasets.synthetic.video import make_synthetic_jester
from bidl_train.datasets.synthetic.volume import make_synthetic_medmnist3d
from helpers.layout_writers import (aedat2_dvs128, nmnist_bytes,
                                    write_es_imagenet, write_recording,
                                    write_shd)


# -- tiny datasets in the official layouts -----------------------------------
# Each writer fills ``root`` and returns the folder a user would give as
# data_root. Samples carry enough events for every frame of the config.

def _rng(name):
    return np.random.default_rng(sum(map(ord, name)))


def write_n_mnist(root):
    """``Train/<digit>/<id>.bin`` and ``Test/<digit>/<id>.bin``, 34x34."""
    rng = _rng('n_mnist')
    for split in ('Train', 'Test'):
        for digit in range(10):
            folder = root / split / str(digit)
            folder.mkdir(parents=True)
            t = np.sort(rng.integers(0, 300_000, 200))  # three saccades
            rows = zip(t, rng.integers(0, 34, 200), rng.integers(0, 34, 200),
                       rng.integers(0, 2, 200))
            (folder / '00004.bin').write_bytes(
                nmnist_bytes([tuple(int(v) for v in r) for r in rows]))
    return root


def _dvs128_recording(rng, n=200):
    t = np.sort(rng.integers(0, 1_000_000, n))
    return aedat2_dvs128([(int(x), int(y), int(p), int(tt)) for x, y, p, tt
                          in zip(rng.integers(0, 128, n),
                                 rng.integers(0, 128, n),
                                 rng.integers(0, 2, n), t)])


def write_cifar10_dvs(root):
    """``<class>/cifar10_<class>_<i>.aedat``: every recording the shipped
    split names as test (900..999 of each class; the reader refuses an
    incomplete download) and two training recordings per class."""
    rng = _rng('cifar10_dvs')
    small = _dvs128_recording(rng, 40)  # the 1000 test files stay tiny
    for cls in CIFAR10_CLASSES:
        (root / cls).mkdir(parents=True)
        for i in range(900, 1000):
            (root / cls / f'cifar10_{cls}_{i}.aedat').write_bytes(small)
        for i in (0, 1):
            (root / cls / f'cifar10_{cls}_{i}.aedat').write_bytes(
                _dvs128_recording(rng))
    return root


def write_dvs_mnist(root):
    """``grabbed_data<d>/scale16/mnist_<d>_scale16_<nnnn>.aedat``; the
    shipped split makes recordings up to 800 training data."""
    rng = _rng('dvs_mnist')
    for digit in range(10):
        folder = root / f'grabbed_data{digit}' / 'scale16'
        folder.mkdir(parents=True)
        for i in (1, 801):
            (folder / f'mnist_{digit}_scale16_{i:04d}.aedat').write_bytes(
                _dvs128_recording(rng))
    return root


def write_dvs_gesture(root):
    """IBM's ``DvsGesture/`` folder (the data root may be its parent):
    AEDAT 3.1 recordings, label windows, the two trial lists."""
    folder = root / 'DvsGesture'
    folder.mkdir(parents=True)
    write_recording(folder, 'user01_fluorescent',
                    [(1, 1000, 200_000, 300), (4, 300_000, 500_000, 300)])
    write_recording(folder, 'user24_lab',
                    [(11, 1000, 200_000, 300), (7, 300_000, 500_000, 300)])
    (folder / 'trials_to_train.txt').write_text('user01_fluorescent.aedat\n')
    (folder / 'trials_to_test.txt').write_text('user24_lab.aedat\n')
    return root


def write_shd_files(root):
    """``shd_train.h5`` / ``shd_test.h5``: spike times (s) on 700 units."""
    rng = _rng('shd')
    root.mkdir(parents=True)
    for split in ('train', 'test'):
        samples = [(np.sort(rng.uniform(0, 0.9, 150)),
                    rng.integers(0, 700, 150)) for _ in range(3)]
        write_shd(root / f'shd_{split}.h5', samples, [0, 19, 7])
    return root


def write_es_imagenet_release(root):
    """``trainlabel.txt`` / ``vallabel.txt`` + ``.npz`` event files."""
    rng = _rng('es_imagenet')

    def events(n):
        # (row, column, step 1..8) inside every image size a, b below
        return np.stack([rng.integers(100, 150, n), rng.integers(100, 150, n),
                         rng.integers(1, 9, n)], 1)

    write_es_imagenet(root, [
        (f'class{k}/class{k}_{i}.npz', k, 254, 190, events(300), events(300))
        for k, i in ((0, 1), (999, 4))])
    write_es_imagenet(root, [
        (f'ILSVRC2012_val_{i:08d}.npz', k, 200, 254, events(300),
         events(300)) for k, i in ((65, 1), (3, 2))], split='val')
    return root


JESTER_CLASSES = (
    'Swiping Left', 'Swiping Right', 'Swiping Down', 'Swiping Up',
    'Pushing Hand Away', 'Pulling Hand In', 'Sliding Two Fingers Left',
    'Sliding Two Fingers Right', 'Sliding Two Fingers Down',
    'Sliding Two Fingers Up', 'Pushing Two Fingers Away',
    'Pulling Two Fingers In', 'Rolling Hand Forward', 'Rolling Hand Backward',
    'Turning Hand Clockwise', 'Turning Hand Counterclockwise',
    'Zooming In With Full Hand', 'Zooming Out With Full Hand',
    'Zooming In With Two Fingers', 'Zooming Out With Two Fingers',
    'Thumb Up', 'Thumb Down', 'Shaking Hand', 'Stop Sign',
    'Drumming Fingers', 'No gesture', 'Doing other things')


def write_jester(root):
    """``20bn-jester-v1/<id>/00001.jpg ...`` (176x100 frames like Jester's)
    and the three ``;``-separated CSVs; the labels file lists all 27
    classes, as the release's does (the clips show 6 of them)."""
    make_synthetic_jester(str(root), num_train_per_class=1,
                          num_val_per_class=1, num_frames=20, height=100,
                          width=176)
    (root / 'jester-v1-labels.csv').write_text(
        ''.join(f'{name}\n' for name in JESTER_CLASSES))
    return root


def write_rgb_gesture(root):
    """BIDL's ``train.pkl`` / ``val.pkl``: a pickled ``[data uint8 [N, 60,
    2, H, W], label [N]]`` pair of frame differences."""
    rng = _rng('rgb_gesture')
    root.mkdir(parents=True)
    for name in ('train.pkl', 'val.pkl'):
        data = rng.integers(0, 256, (3, 60, 2, 48, 64), dtype=np.uint8)
        with open(root / name, 'wb') as f:
            pickle.dump([data, np.array([0, 10, 4])], f)
    return root


def write_luna16(root):
    """BIDL's prepared patches: ``<split>/<label>_<seriesuid>_<i>.npy``,
    uint8 ``[8, 32, 32]``."""
    rng = _rng('luna16')
    for split in ('train', 'test'):
        (root / split).mkdir(parents=True)
        for label in (0, 1):
            np.save(root / split / f'{label}_1.3.6.1.4.1.14519_{label}.npy',
                    rng.integers(0, 256, (8, 32, 32), dtype=np.uint8))
    return root


def write_medmnist3d(root):
    """``nodulemnist3d.npz`` with ``{train,val,test}_{images,labels}``."""
    make_synthetic_medmnist3d(str(root / 'nodulemnist3d.npz'), num_train=4,
                              num_val=2, num_test=2)
    return root


def write_mnist(root):
    """The four IDX files gzipped, as the official download ships them
    (``train-images-idx3-ubyte.gz`` ...)."""
    for path in make_synthetic_digits(str(root), num_train=4,
                                      num_test=4).values():
        with open(path, 'rb') as raw, gzip.open(path + '.gz', 'wb') as gz:
            gz.write(raw.read())
        os.remove(path)
    return root


def write_imdb(root):
    """``aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt`` beside the
    release's other files (unlabelled reviews, bag-of-words features, URL
    lists, the vocabulary), which the reader must leave alone."""
    acl = make_synthetic_reviews(str(root), num_train=6, num_test=4)
    extras = ['imdb.vocab', 'imdbEr.txt', 'README', 'train/unsup/0_0.txt',
              'train/unsupBow.feat', 'train/urls_unsup.txt'] + [
                  f'{split}/{name}' for split in ('train', 'test')
                  for name in ('labeledBow.feat', 'urls_pos.txt',
                               'urls_neg.txt')]
    for rel in extras:
        os.makedirs(osp.dirname(osp.join(acl, rel)), exist_ok=True)
        with open(osp.join(acl, rel), 'w') as f:
            f.write('not a labelled review\n')
    return root
