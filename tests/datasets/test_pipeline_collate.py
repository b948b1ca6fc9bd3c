"""Random transforms record what they did in a form the batch collate can
stack: the same keys, types and lengths whether or not they fired.

A ``None`` (CutoutVideo when it cut no hole) or a tuple whose length varies
(RandomFlip3D's list of flipped axes) crashed the first training batch of
``configs/jester.py``, inside torch's collate, far from the transform.
"""
import numpy as np
import torch
from mmengine.dataset import default_collate

from bidl_train.cli.common import load_config
from bidl_train.datasets.synthetic.video import make_synthetic_jester
from bidl_train.datasets.transforms.video import CutoutVideo
from bidl_train.datasets.transforms.volume import RandomFlip3D
from bidl_train.registry import DATASETS


def _collate_many(transform, make_input, n=16):
    np.random.seed(0)
    samples = [transform(dict(inputs=make_input(), label=0))
               for _ in range(n)]
    return samples, default_collate(samples)


def test_cutout_collates_whether_or_not_it_cut():
    clip = lambda: np.full((2, 8, 8, 3), 7, np.uint8)  # noqa: E731
    samples, batch = _collate_many(CutoutVideo(area=0.25, prob=0.5), clip)
    cut = [s['cutout_box'] != (0, 0, 0, 0) for s in samples]
    assert any(cut) and not all(cut)  # both outcomes occurred
    for s, was_cut in zip(samples, cut):
        assert (s['inputs'] == 0).any() == was_cut  # fill 0 only if cut
    assert batch['inputs'].shape == (16, 2, 8, 8, 3)


def test_flip3d_collates_whatever_it_flipped():
    vol = lambda: np.arange(27, dtype=np.float32).reshape(3, 3, 3)  # noqa
    samples, batch = _collate_many(RandomFlip3D(prob=0.5), vol)
    counts = {sum(s['flips']) for s in samples}
    assert len(counts) > 1  # different numbers of flipped axes occurred
    assert len(batch['flips']) == 3  # one flag per axis, stacked


def test_jester_config_train_batch_collates(tmp_path):
    """The task config's own training pipeline, on clips in the Jester
    layout, gives batches the trainer can collate."""
    root = make_synthetic_jester(str(tmp_path / 'jester'),
                                 num_train_per_class=2, num_val_per_class=1,
                                 num_frames=6, height=20, width=32)
    cfg = load_config('configs/jester.py')
    for loader in ('train_dataloader', 'val_dataloader'):
        ds_cfg = cfg[loader].dataset
        ds_cfg.data_root = root
        ds_cfg.num_steps = 4
        ds = DATASETS.build(ds_cfg)
        np.random.seed(1)
        batch = default_collate([ds[i] for i in range(len(ds))])
        assert batch['inputs'].shape == (len(ds), 4, 3, 112, 112)
        assert batch['inputs'].dtype == torch.float32
