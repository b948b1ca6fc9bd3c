"""A synthetic sensor shift for co-learning demos: the same scenes seen by
a sensor mounted differently.

:class:`SensorShift` moves every frame of a ``[T, C, H, W]`` sample by
``(dy, dx)`` pixels (what leaves the field of view is lost, what enters is
empty: zero fill, as a real sensor would record) and optionally mirrors it
left-right and/or swaps the two polarity channels. :class:`ShiftedDataset`
applies it to any dataset that yields ``{'inputs': Tensor[T, C, H, W],
...}``. A network trained on the unshifted data meets the shifted data
after deployment; local learning on the chip must recover the accuracy.
"""
import torch
from torch.utils.data import Dataset

from bidl_train.errors import ConfigError
from bidl_train.registry import DATASETS

from .steps import wrapped_num_steps

__all__ = ['SensorShift', 'ShiftedDataset']


class SensorShift:
    """``x[..., y, x] -> x[..., y - dy, x - dx]`` (zero fill), then optional
    left-right mirror and polarity swap.

    Args:
        shift (tuple[int, int]): ``(dy, dx)`` in pixels (positive: down,
            right).
        mirror (bool): flip left-right after the shift.
        swap_polarity (bool): exchange channels 0 and 1.
    """

    def __init__(self, shift=(0, 0), mirror=False, swap_polarity=False):
        if not isinstance(shift, (list, tuple)) or len(shift) != 2 or \
                not all(isinstance(s, int) and not isinstance(s, bool)
                        for s in shift):
            raise ConfigError(f'SensorShift: shift must be (dy, dx) ints, '
                              f'got {shift!r}')
        self.shift = tuple(shift)
        self.mirror = bool(mirror)
        self.swap_polarity = bool(swap_polarity)

    def __call__(self, frames):
        if not torch.is_tensor(frames) or frames.dim() < 3:
            raise ConfigError('SensorShift: expected frames [..., H, W], got '
                              f'{getattr(frames, "shape", type(frames))}')
        dy, dx = self.shift
        height, width = frames.shape[-2:]
        out = torch.zeros_like(frames)
        if abs(dy) < height and abs(dx) < width:
            src_y = slice(max(0, -dy), height - max(0, dy))
            dst_y = slice(max(0, dy), height - max(0, -dy))
            src_x = slice(max(0, -dx), width - max(0, dx))
            dst_x = slice(max(0, dx), width - max(0, -dx))
            out[..., dst_y, dst_x] = frames[..., src_y, src_x]
        if self.mirror:
            out = out.flip(-1)
        if self.swap_polarity:
            if out.dim() < 4 or out.shape[-3] != 2:
                raise ConfigError('SensorShift: swap_polarity needs two '
                                  'polarity channels [..., 2, H, W]')
            out = out.flip(-3)
        return out


@DATASETS.register_module()
class ShiftedDataset(Dataset):
    """Wrap a dataset (instance or config) and apply :class:`SensorShift`
    to each sample's ``inputs``.

    Args:
        dataset (dict | Dataset): the wrapped dataset.
        shift, mirror, swap_polarity: see :class:`SensorShift`.
    """

    def __init__(self, dataset, shift=(0, 0), mirror=False,
                 swap_polarity=False):
        if isinstance(dataset, dict):
            dataset = DATASETS.build(dataset)
        self.dataset = dataset
        self.transform = SensorShift(shift, mirror, swap_polarity)

    @classmethod
    def stated_num_steps(cls, cfg):
        return wrapped_num_steps(cfg['dataset'])

    @property
    def metainfo(self):
        info = dict(getattr(self.dataset, 'metainfo', {}) or {})
        info['sensor_shift'] = dict(shift=self.transform.shift,
                                    mirror=self.transform.mirror,
                                    swap_polarity=self.transform.swap_polarity)
        return info

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        sample = dict(self.dataset[index])
        sample['inputs'] = self.transform(sample['inputs'])
        return sample
