"""Augmentation draws follow the run's seed, and differ between DataLoader
workers and between epochs (see bidl_train/datasets/seeding.py)."""
import pickle

import numpy as np
import torch
from mmengine.config import Config
from torch.utils.data import DataLoader, Dataset

from bidl_train.datasets.seeding import TransformRNG, seed_worker
from bidl_train.datasets.transforms.frames import RandomCropPad
from bidl_train.engine.runner import _seed_workers


def test_unseeded_draws_follow_numpys_global_generator():
    rng = TransformRNG()
    np.random.seed(5)
    first = [rng.integers(0, 1000) for _ in range(4)]
    np.random.seed(5)
    assert [rng.integers(0, 1000) for _ in range(4)] == first
    np.random.seed(6)
    assert [rng.integers(0, 1000) for _ in range(4)] != first


def test_seeded_draws_are_a_private_stream():
    a, b = TransformRNG(3), TransformRNG(3)
    np.random.seed(0)
    draws = a.random(3)
    np.random.seed(1)  # the global generator does not matter
    np.testing.assert_array_equal(b.random(3), draws)


def test_pickles_for_spawned_workers():
    for seed in (None, 7):
        copy = pickle.loads(pickle.dumps(TransformRNG(seed)))
        assert 0 <= copy.random() < 1


class _Crops(Dataset):
    """Each item: the crop offset RandomCropPad drew for it."""

    def __init__(self):
        self.crop = RandomCropPad(padding=3)
        # unique values: the top-left output value gives the offset
        self.frame = np.arange(100, dtype=np.float32).reshape(1, 1, 10, 10)

    def __len__(self):
        return 8

    def __getitem__(self, index):
        out = self.crop(dict(inputs=self.frame + 1000))['inputs']
        return torch.as_tensor(out[0, 0].copy())


def _epoch_draws(torch_seed):
    """The 8 crops of one epoch with 2 workers, main generator seeded as
    EpochSeedHook does at an epoch start."""
    torch.manual_seed(torch_seed)
    loader = DataLoader(_Crops(), batch_size=4, num_workers=2,
                        worker_init_fn=seed_worker)
    return torch.cat([batch.flatten(1) for batch in loader]).numpy()


def test_workers_and_epochs_draw_differently_and_reproducibly():
    epoch0, epoch1 = _epoch_draws(10), _epoch_draws(11)
    # worker 0 made items 0-3, worker 1 items 4-7: not the same crops
    assert not np.array_equal(epoch0[:4], epoch0[4:])
    assert not np.array_equal(epoch0, epoch1)  # a new epoch, new crops
    np.testing.assert_array_equal(_epoch_draws(10), epoch0)  # same seed


def test_runner_config_gets_the_worker_seeding():
    cfg = Config(dict(
        train_dataloader=dict(num_workers=2),
        val_dataloader=dict(num_workers=2,
                            worker_init_fn=dict(type='mine')),
        test_dataloader=None))
    _seed_workers(cfg)
    assert cfg.train_dataloader.worker_init_fn == dict(
        type='bidl_train.seed_worker')
    assert cfg.val_dataloader.worker_init_fn == dict(type='mine')  # kept
