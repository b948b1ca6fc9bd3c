"""Small synthetic DVS-like motion data for the co-learning demo.

A ``size x size`` sensor sees a square blob of side ``blob`` move one pixel
per step in one of four directions (the class: 0 right, 1 left, 2 down,
3 up) from a random start. Like a DVS, channel 0 (ON) holds the pixels the
blob enters at each step and channel 1 (OFF) the pixels it leaves; the
first frame shows the blob itself as ON events. Uniform background noise
events (probability ``noise`` per pixel, channel and step) are added.

Samples are generated on the fly and are deterministic in
``(seed, split, index)``: no files, no download. Swapping the polarity
channels (:class:`~bidl_train.learning.SensorShift`) reverses the apparent
motion, the input distribution shift of the co-learning demo.
"""
import torch
from torch.utils.data import Dataset

from bidl_train.errors import ConfigError
from bidl_train.registry import DATASETS
from bidl_train.utils.time_steps import UNSET, resolve_num_steps

__all__ = ['SyntheticMotion', 'DIRECTIONS']

#: (dy, dx) per class
DIRECTIONS = ((0, 1), (0, -1), (1, 0), (-1, 0))
_SPLITS = {'train': 0, 'val': 1, 'test': 2}


@DATASETS.register_module()
class SyntheticMotion(Dataset):
    """Moving-blob event frames ``[T, 2, size, size]`` (see module doc).

    Args:
        split (str): 'train', 'val' or 'test' (different samples).
        num_samples (int): samples in the split.
        num_steps (int): time steps, T (``T`` is its old name).
        size (int): sensor side; blob (int): blob side.
        noise (float): background event probability.
        seed (int): base seed.
    """

    def __init__(self, split='train', num_samples=400, num_steps=UNSET,
                 size=16, blob=3, noise=0.02, seed=0, T=UNSET):
        if split not in _SPLITS:
            raise ConfigError(f'SyntheticMotion: split must be one of '
                              f'{sorted(_SPLITS)}, got {split!r}')
        T = self._num_steps(num_steps, T)
        if size < blob + T:
            raise ConfigError(f'SyntheticMotion: size ({size}) must be at '
                              f'least blob + num_steps ({blob + T}) so the '
                              'blob stays in view')
        if not 0 <= noise < 1:
            raise ConfigError(f'SyntheticMotion: noise must lie in [0, 1), '
                              f'got {noise!r}')
        self.split, self.num_samples = split, int(num_samples)
        self.num_steps, self.size, self.blob = T, int(size), int(blob)
        self.noise, self.seed = float(noise), int(seed)

    @staticmethod
    def _num_steps(num_steps, T):
        return int(resolve_num_steps('SyntheticMotion', num_steps, T=T,
                                     default=8))

    @classmethod
    def stated_num_steps(cls, cfg):
        return cls._num_steps(cfg.get('num_steps', UNSET),
                              cfg.get('T', UNSET))

    @property
    def metainfo(self):
        return dict(classes=('right', 'left', 'down', 'up'), synthetic=True,
                    num_steps=self.num_steps)

    def __len__(self):
        return self.num_samples

    def _blob_frames(self, label, gen):
        T, size, blob = self.num_steps, self.size, self.blob
        dy, dx = DIRECTIONS[label]
        span = size - blob - (T - 1)  # start range keeping the blob inside

        def start(d):
            low = T - 1 if d < 0 else 0
            return low + int(torch.randint(0, span + 1, (1, ),
                                           generator=gen))

        y0, x0 = start(dy), start(dx)
        occupied = torch.zeros(T, size, size)
        for t in range(T):
            y, x = y0 + dy * t, x0 + dx * t
            occupied[t, y:y + blob, x:x + blob] = 1.0
        previous = torch.cat([torch.zeros(1, size, size), occupied[:-1]])
        on = (occupied - previous).clamp(min=0)
        off = (previous - occupied).clamp(min=0)
        return torch.stack([on, off], 1)

    def __getitem__(self, index):
        if not 0 <= index < self.num_samples:
            raise IndexError(index)
        gen = torch.Generator().manual_seed(
            self.seed * 1_000_003 + _SPLITS[self.split] * 100_003 + index)
        label = int(torch.randint(0, len(DIRECTIONS), (1, ), generator=gen))
        frames = self._blob_frames(label, gen)
        noise = torch.rand(frames.shape, generator=gen) < self.noise
        frames = torch.maximum(frames, noise.float())
        return dict(inputs=frames, label=label)
