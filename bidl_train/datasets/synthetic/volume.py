"""Synthetic MedMNIST-style CT volumes, with and without a nodule.

Every volume is smooth "lung tissue": a low background (~40) plus Gaussian
noise and a few large faint blobs (vessels / partial volumes), identical in
distribution for both classes. Class 1 volumes also hold one bright compact
spherical blob (radius 2..4 voxels, peak ~200) at a random position away
from the border: a nodule. A linear classifier on the mean intensity cannot
separate the classes reliably; a local feature detector can.

Written in the MedMNIST ``.npz`` layout: ``{split}_images`` uint8
``[N, S, S, S]`` and ``{split}_labels`` uint8 ``[N, 1]`` for train/val/test.
"""
import os
import os.path as osp

import numpy as np

SYNTHETIC_CLASSES = ['no nodule', 'nodule']


def _blob(shape, center, radius):
    """Gaussian bump ``exp(-r^2 / (2 (radius/2)^2))`` centred at ``center``."""
    z, y, x = np.ogrid[:shape[0], :shape[1], :shape[2]]
    r2 = (z - center[0])**2 + (y - center[1])**2 + (x - center[2])**2
    return np.exp(-r2 / (2.0 * (radius / 2.0)**2))


def synthetic_volume(rng, size, nodule):
    """One ``uint8 [size]*3`` volume; with a compact bright blob if nodule."""
    shape = (size, size, size)
    vol = 40.0 + rng.normal(0.0, 8.0, shape)
    for _ in range(int(rng.integers(1, 4))):  # faint large structures
        vol += 50.0 * _blob(shape, rng.uniform(0, size, 3),
                            rng.uniform(size / 4, size / 2))
    if nodule:
        margin = 5
        center = rng.uniform(margin, size - 1 - margin, 3)
        vol += 160.0 * _blob(shape, center, rng.uniform(2.0, 4.0))
    return np.clip(vol, 0, 255).astype(np.uint8)


def make_synthetic_medmnist3d(path,
                              num_train=64,
                              num_val=16,
                              num_test=16,
                              size=28,
                              seed=0):
    """Write a balanced synthetic MedMNIST-style ``.npz`` to ``path``.

    Labels alternate 0, 1, 0, 1, ... so every split is balanced. The file
    is written under a temporary name and renamed into place.
    """
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (('train', num_train), ('val', num_val), ('test',
                                                             num_test)):
        labels = np.arange(n) % 2
        arrays[f'{split}_images'] = np.stack(
            [synthetic_volume(rng, size, bool(y)) for y in labels]) \
            if n else np.zeros((0, size, size, size), np.uint8)
        arrays[f'{split}_labels'] = labels.astype(np.uint8).reshape(n, 1)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}.npz'
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
    return path
