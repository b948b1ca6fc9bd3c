"""Frame-level augmentations on ``results['inputs']`` (``[T, C, H, W]``).

The same random choice is applied to every time step of a sample (a crop
that moved between frames would invent motion). ``seed`` as in
:mod:`.events`.
"""
import numpy as np

from bidl_train.errors import DataError
from bidl_train.registry import TRANSFORMS


def _inputs(results, name):
    if 'inputs' not in results:
        raise DataError(f'{name} needs results["inputs"] ([T, C, H, W]); put '
                        'it after the representation')
    x = np.asarray(results['inputs'])
    if x.ndim != 4:
        raise DataError(f'{name} expects inputs [T, C, H, W], got shape '
                        f'{x.shape}')
    return x


@TRANSFORMS.register_module()
class RandomCropPad:
    """Zero-pad by ``padding`` on each side, then crop back to ``H x W`` at a
    random offset (the CIFAR-style crop)."""

    def __init__(self, padding=4, seed=None):
        self.padding = padding
        self.rng = np.random.default_rng(seed)

    def __call__(self, results):
        x = _inputs(results, 'RandomCropPad')
        p = self.padding
        padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        i, j = self.rng.integers(0, 2 * p + 1, 2)
        results['inputs'] = padded[:, :, i:i + x.shape[2], j:j + x.shape[3]]
        return results


@TRANSFORMS.register_module()
class RandomFlipFrames:
    """Flip left-right (last axis) with probability ``prob``."""

    def __init__(self, prob=0.5, seed=None):
        self.prob = prob
        self.rng = np.random.default_rng(seed)

    def __call__(self, results):
        x = _inputs(results, 'RandomFlipFrames')
        if self.rng.random() < self.prob:
            results['inputs'] = x[..., ::-1].copy()
        return results
