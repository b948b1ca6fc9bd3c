"""Frame-level augmentations on ``results['inputs']`` (``[T, C, H, W]``).

The same random choice is applied to every time step of a sample (a crop
that moved between frames would invent motion). ``seed`` as in
:mod:`.events`.
"""
import cv2
import numpy as np

from bidl_train.datasets.seeding import TransformRNG
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
        self.rng = TransformRNG(seed)

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
        self.rng = TransformRNG(seed)

    def __call__(self, results):
        x = _inputs(results, 'RandomFlipFrames')
        if self.rng.random() < self.prob:
            results['inputs'] = x[..., ::-1].copy()
        return results


def _planes(x, fn):
    """Apply ``fn`` (H x W -> h x w) to every ``[t, c]`` plane: the same
    operation for every frame by construction."""
    T, C = x.shape[:2]
    out = [fn(np.ascontiguousarray(x[t, c], dtype=np.float32))
           for t in range(T) for c in range(C)]
    return np.stack(out).reshape(T, C, *out[0].shape)


@TRANSFORMS.register_module()
class ResizeFrames:
    """Resize every frame of ``inputs`` ``[T, C, H, W]`` to ``size``.

    Modes: ``'area'`` (mean over the covered source area; ``cv2.INTER_AREA``),
    ``'sum'`` (``'area'`` times ``(H W) / (h w)``, so event counts are
    preserved: a 2x down-sampling sums 2x2 blocks), ``'nearest'``,
    ``'bilinear'``. Output float32.
    """

    MODES = {'area': cv2.INTER_AREA, 'sum': cv2.INTER_AREA,
             'nearest': cv2.INTER_NEAREST, 'bilinear': cv2.INTER_LINEAR}

    def __init__(self, size, mode='area'):
        if mode not in self.MODES:
            raise DataError(f'ResizeFrames: mode must be one of '
                            f'{sorted(self.MODES)}, got {mode!r}')
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.mode = mode

    def __call__(self, results):
        x = _inputs(results, 'ResizeFrames')
        h, w = self.size
        H, W = x.shape[2:]
        interp = self.MODES[self.mode]
        out = _planes(x, lambda f: cv2.resize(f, (w, h),
                                              interpolation=interp))
        if self.mode == 'sum':
            out *= (H * W) / (h * w)
        results['inputs'] = out
        return results

    def __repr__(self):
        return f'ResizeFrames(size={self.size}, mode={self.mode!r})'


@TRANSFORMS.register_module()
class RandomRotateFrames:
    """Rotate every frame by one random angle ``a ~ U(-degrees, degrees)``
    (counter-clockwise as displayed, y down) about the frame centre
    ``((W - 1) / 2, (H - 1) / 2)``; uncovered pixels become 0.

    Source of output pixel (x, y), with ``c = cos a``, ``s = sin a`` and
    ``(dx, dy)`` its offset from the centre::

        x_src = cx + c dx - s dy,   y_src = cy + s dx + c dy

    ``interpolation``: ``'nearest'`` (keeps counts integer) or
    ``'bilinear'``. The angle drawn is stored in ``results['rotation']``.
    """

    INTERP = {'nearest': cv2.INTER_NEAREST, 'bilinear': cv2.INTER_LINEAR}

    def __init__(self, degrees=15.0, prob=1.0, interpolation='nearest',
                 seed=None):
        if interpolation not in self.INTERP:
            raise DataError(f'RandomRotateFrames: interpolation must be one '
                            f'of {sorted(self.INTERP)}, got '
                            f'{interpolation!r}')
        lo, hi = ((-degrees, degrees) if np.isscalar(degrees)
                  else tuple(degrees))
        self.range = (float(lo), float(hi))
        self.prob = prob
        self.interpolation = interpolation
        self.rng = TransformRNG(seed)

    def __call__(self, results):
        x = _inputs(results, 'RandomRotateFrames')
        if self.rng.random() >= self.prob:
            results['rotation'] = 0.0
            return results
        angle = float(self.rng.uniform(*self.range))
        H, W = x.shape[2:]
        # cv2's matrix maps source to destination; with WARP_INVERSE_MAP
        # unset it inverts it itself, so positive = counter-clockwise
        m = cv2.getRotationMatrix2D(((W - 1) / 2, (H - 1) / 2), angle, 1.0)
        flags = self.INTERP[self.interpolation]
        results['inputs'] = _planes(x, lambda f: cv2.warpAffine(
            f, m, (W, H), flags=flags, borderMode=cv2.BORDER_CONSTANT,
            borderValue=0))
        results['rotation'] = angle
        return results
