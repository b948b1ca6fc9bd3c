"""Transforms of 3D volumes, ``results['inputs']`` = array ``[D, H, W]``.

Every transform moves whole voxels of the volume as one block (one random
draw per call, applied to all slices), so the depth slices that become time
steps stay aligned: slice ``d`` of the output is always a slice of the same
transformed volume. Random draws use NumPy's global generator, which
mmengine seeds per data-loader worker.

* ``IntensityWindow(low, high)``: ``y = clip((x - low) / (high - low), 0, 1)``
  (lung window: HU ``[-1200, 600]``, as BIDL's ``lumTrans``).
* ``RandomFlip3D(axes, prob)``: each listed axis flipped with ``prob``.
* ``RandomRot90_3D(axes=(1, 2))``: ``np.rot90`` by ``k`` in {0,1,2,3}
  in the plane of ``axes`` (in-slice by default); needs a square plane
  for ``k`` odd unless ``allow_reshape``.
* ``RandomCrop3D(size, padding)`` / ``CenterCrop3D(size)``: a
  ``(d, h, w)`` box; random crops pad first by ``padding`` voxels of
  ``pad_value`` on every side.
"""
import numpy as np

from bidl_train.errors import ConfigError, DataError
from bidl_train.registry import TRANSFORMS


def _volume(results, name):
    vol = np.asarray(results['inputs'])
    if vol.ndim != 3:
        raise DataError(
            f'{name} expects a volume [D, H, W], got shape {vol.shape}',
            path=results.get('path'))
    return vol


def _triple(size, name):
    if isinstance(size, int):
        return (size, size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 3 or min(size) < 1:
        raise ConfigError(f'{name}: size must be an int or (d, h, w) of '
                          f'positive ints, got {size}')
    return size


@TRANSFORMS.register_module()
class IntensityWindow:
    """Map ``[low, high]`` linearly onto ``[0, 1]`` and clip outside."""

    def __init__(self, low=-1200.0, high=600.0):
        if not high > low:
            raise ConfigError(f'IntensityWindow: high ({high}) must be > low '
                              f'({low})')
        self.low, self.high = float(low), float(high)

    def __call__(self, results):
        vol = _volume(results, 'IntensityWindow').astype(np.float32)
        results['inputs'] = np.clip(
            (vol - self.low) / (self.high - self.low), 0.0, 1.0)
        return results


@TRANSFORMS.register_module()
class RandomFlip3D:
    """Flip each axis in ``axes`` (0 = depth, 1 = H, 2 = W) with ``prob``.

    Records ``flips``: one bool per entry of ``axes``.
    """

    def __init__(self, axes=(0, 1, 2), prob=0.5):
        if not set(axes) <= {0, 1, 2}:
            raise ConfigError(f'RandomFlip3D: axes must be among 0, 1, 2, '
                              f'got {axes}')
        self.axes, self.prob = tuple(axes), float(prob)

    def __call__(self, results):
        vol = _volume(results, 'RandomFlip3D')
        flips = tuple(bool(np.random.rand() < self.prob) for _ in self.axes)
        flipped = tuple(a for a, f in zip(self.axes, flips) if f)
        if flipped:
            vol = np.flip(vol, axis=flipped)
        results['inputs'] = np.ascontiguousarray(vol)
        # one flag per configured axis, not the list of flipped axes: the
        # batch collate needs the same length in every sample
        results['flips'] = flips
        return results


@TRANSFORMS.register_module()
class RandomRot90_3D:
    """Rotate by a random multiple of 90 degrees in the plane of ``axes``."""

    def __init__(self, axes=(1, 2), allow_reshape=False):
        axes = tuple(axes)
        if len(axes) != 2 or not set(axes) <= {0, 1, 2} or \
                axes[0] == axes[1]:
            raise ConfigError(f'RandomRot90_3D: axes must be two distinct '
                              f'axes among 0, 1, 2, got {axes}')
        self.axes, self.allow_reshape = axes, allow_reshape

    def __call__(self, results):
        vol = _volume(results, 'RandomRot90_3D')
        k = int(np.random.randint(4))
        a, b = self.axes
        if k % 2 and vol.shape[a] != vol.shape[b] and not self.allow_reshape:
            raise DataError(
                f'RandomRot90_3D: plane {self.axes} of shape '
                f'{vol.shape} is not square; crop it first or set '
                'allow_reshape=True', path=results.get('path'))
        results['inputs'] = np.ascontiguousarray(np.rot90(vol, k, self.axes))
        results['rot90_k'] = k
        return results


def _crop(vol, start, size):
    d, h, w = start
    return np.ascontiguousarray(vol[d:d + size[0], h:h + size[1],
                                    w:w + size[2]])


def _check_fits(vol, size, name, results):
    if any(s > v for s, v in zip(size, vol.shape)):
        raise DataError(
            f'{name}: crop {size} is larger than the volume {vol.shape}; '
            'pad it or choose a smaller size', path=results.get('path'))


@TRANSFORMS.register_module()
class RandomCrop3D:
    """Random ``(d, h, w)`` box, after optional constant padding."""

    def __init__(self, size, padding=0, pad_value=0.0):
        self.size = _triple(size, 'RandomCrop3D')
        self.padding = _triple(padding, 'RandomCrop3D') if padding else \
            (0, 0, 0)
        self.pad_value = pad_value

    def __call__(self, results):
        vol = _volume(results, 'RandomCrop3D')
        if any(self.padding):
            vol = np.pad(vol, [(p, p) for p in self.padding],
                         constant_values=self.pad_value)
        _check_fits(vol, self.size, 'RandomCrop3D', results)
        start = tuple(
            int(np.random.randint(v - s + 1))
            for v, s in zip(vol.shape, self.size))
        results['inputs'] = _crop(vol, start, self.size)
        results['crop_start'] = start  # in padded coordinates
        return results


@TRANSFORMS.register_module()
class CenterCrop3D:
    """Central ``(d, h, w)`` box; start ``(V - s) // 2`` on every axis."""

    def __init__(self, size):
        self.size = _triple(size, 'CenterCrop3D')

    def __call__(self, results):
        vol = _volume(results, 'CenterCrop3D')
        _check_fits(vol, self.size, 'CenterCrop3D', results)
        start = tuple((v - s) // 2 for v, s in zip(vol.shape, self.size))
        results['inputs'] = _crop(vol, start, self.size)
        return results
