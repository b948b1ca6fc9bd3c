"""Where the random draws of data augmentation come from.

A run is repeatable when every random draw follows from its seed
(``randomness.seed``). Two things break that for augmentations:

* a transform that owns a generator seeded from OS entropy
  (``np.random.default_rng(None)``) draws something new on every run, and
  its generator, created once in the main process, is copied unchanged into
  every DataLoader worker of every epoch: the workers draw the same numbers,
  epoch after epoch;
* mmengine's worker seeding (``seed + worker id``) is the same in every
  epoch, so even draws from numpy's global generator repeat per worker.

Here a transform's :class:`TransformRNG` with ``seed=None`` derives each
draw from numpy's global generator, and :func:`seed_worker` seeds that
generator in each worker from torch's per-worker seed, which PyTorch draws
anew for every epoch's workers from the main process's generator (itself
re-seeded per epoch by ``EpochSeedHook``). So augmentations differ between
workers, ranks and epochs, and a run with the same seed draws the same
ones. A transform given an int ``seed`` keeps a private generator: the same
stream on every run, as asked.
"""
import os
import random

import numpy as np
import torch

from bidl_train.registry import PASS_THROUGH_REGISTRIES

__all__ = ['TransformRNG', 'seed_worker']


class TransformRNG:
    """A transform's random source, with numpy ``Generator`` methods.

    ``seed=None``: every call (``rng.random()``, ``rng.integers(...)``)
    runs on a generator seeded from numpy's global one at that moment (see
    the module docstring); an int: a private ``default_rng(seed)``.
    """

    def __init__(self, seed=None):
        self.seed = seed
        self._own = None if seed is None else np.random.default_rng(seed)

    def generator(self):
        if self._own is not None:
            return self._own
        return np.random.default_rng(np.random.randint(2**31, size=2))

    def __getattr__(self, name):
        # only public Generator methods; private lookups (pickling) fail
        # normally instead of recursing
        if name.startswith('_'):
            raise AttributeError(name)
        return getattr(self.generator(), name)


def seed_worker(worker_id):
    """DataLoader ``worker_init_fn``: seed python's and numpy's generators
    (and torch's, per rank) from this worker's torch seed and the rank.

    ``torch.initial_seed()`` in a worker is the loader's base seed plus the
    worker id; the base seed is new for every epoch's iterator but shared
    by all ranks of a distributed run, hence the rank in the mix.
    """
    rank = int(os.environ.get('RANK', 0))
    seed = np.random.SeedSequence([torch.initial_seed(), rank, worker_id])
    words = seed.generate_state(2)
    np.random.seed(words)
    random.seed(int(words[0]) << 32 | int(words[1]))
    torch.manual_seed(int(words[0]) << 32 | int(words[1]))


# mmengine builds ``worker_init_fn=dict(type='bidl_train.seed_worker')`` from
# FUNCTIONS (the scope prefix: mmengine's root registry does not search its
# children); engine.runner puts it into every dataloader config
PASS_THROUGH_REGISTRIES['FUNCTIONS'].register_module(
    name='seed_worker', module=seed_worker)
