"""Clip transforms, ``results['inputs']`` = array ``[T, H, W, C]``.

Every transform draws its random parameters ONCE per clip and applies them
to every frame, so a clip stays one coherent video (same crop box, same
flip, same colour change for all T frames). The chosen parameters are
stored in ``results`` (``crop_box`` = ``(y, x, h, w)``, ``flipped``, ...).
uint8 clips stay uint8 (values clipped to ``[0, 255]``); only
``NormalizeVideo`` turns them into float32. Random draws use NumPy's
global generator, which mmengine seeds per data-loader worker.

* ``RandomResizedCropVideo(size, scale, ratio)``: box of area fraction
  ``s ~ U(scale)`` and aspect ``r`` with ``log r ~ U(log ratio)``
  (``h = sqrt(s A / r)``, ``w = sqrt(s A r)``), up to 10 tries, else the
  central box; then resized to ``size``.
* ``RandomCropVideo(size, padding)``: BIDL's ``RandomCropVideoDict``.
* ``CenterCropVideo(size)``, ``ResizeVideo(size)`` (``-1`` keeps aspect).
* ``CropPadByRatioVideo(allowed_ratio, pad)``: pad the short side with
  ``pad_value`` until ``W / H`` lies in ``allowed_ratio`` (Jester clips are
  176x100, ratio 1.76), optionally plus a random border fraction ``pad``.
* ``RandomFlipVideo(prob, label_map)``: horizontal flip; ``label_map``
  renames labels whose meaning flips (swipe left <-> swipe right).
* ``ColorJitterVideo(brightness, contrast, saturation)``: factors
  ``1 + U(-b, b)``; brightness ``x*f``, contrast ``(x - mean)*f + mean``
  (mean of the grey clip), saturation ``(x - grey)*f + grey``.
* ``CutoutVideo(area, prob, fill)``: one square hole of ``area`` of the
  frame at the same place in every frame.
* ``NormalizeVideo(mean, std)``: ``(x - mean) / std`` per channel.
"""
import math

import cv2
import numpy as np

from bidl_train.errors import ConfigError, DataError
from bidl_train.registry import TRANSFORMS


def _clip(results, name):
    clip = np.asarray(results['inputs'])
    if clip.ndim != 4:
        raise DataError(f'{name} expects a clip [T, H, W, C], got shape '
                        f'{clip.shape}', path=results.get('path'))
    return clip


def _pair(size, name):
    if isinstance(size, int):
        return (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2:
        raise ConfigError(f'{name}: size must be an int or (h, w), got '
                          f'{size}')
    return size


def _resize_frames(clip, out_hw):
    """Resize every frame to ``(h, w)`` (bilinear; area when shrinking)."""
    h, w = out_hw
    if clip.shape[1:3] == (h, w):
        return clip
    shrink = h < clip.shape[1] and w < clip.shape[2]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    frames = [cv2.resize(f, (w, h), interpolation=interp) for f in clip]
    return np.stack([f.reshape(h, w, -1) for f in frames]).astype(clip.dtype)


def _finish(clip, dtype):
    """Back to the input dtype; uint8 clipped and rounded."""
    if dtype == np.uint8:
        return np.clip(np.round(clip), 0, 255).astype(np.uint8)
    return clip.astype(dtype)


@TRANSFORMS.register_module()
class RandomResizedCropVideo:
    """Same random box for all frames, resized to ``size``."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                 max_attempts=10):
        self.size = _pair(size, 'RandomResizedCropVideo')
        if scale[0] > scale[1] or ratio[0] > ratio[1]:
            raise ConfigError('RandomResizedCropVideo: scale and ratio must '
                              'be (min, max)')
        self.scale, self.ratio = scale, ratio
        self.max_attempts = max_attempts

    def _box(self, height, width):
        area = height * width
        log_r = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(self.max_attempts):
            target = area * np.random.uniform(*self.scale)
            r = math.exp(np.random.uniform(*log_r))
            w = int(round(math.sqrt(target * r)))
            h = int(round(math.sqrt(target / r)))
            if 0 < w <= width and 0 < h <= height:
                y = np.random.randint(0, height - h + 1)
                x = np.random.randint(0, width - w + 1)
                return y, x, h, w
        # fall back to the largest central box within the ratio range
        r_in = width / height
        if r_in < self.ratio[0]:
            w, h = width, int(round(width / self.ratio[0]))
        elif r_in > self.ratio[1]:
            h, w = height, int(round(height * self.ratio[1]))
        else:
            h, w = height, width
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, results):
        clip = _clip(results, 'RandomResizedCropVideo')
        y, x, h, w = self._box(clip.shape[1], clip.shape[2])
        results['inputs'] = _resize_frames(clip[:, y:y + h, x:x + w],
                                           self.size)
        results['crop_box'] = (y, x, h, w)
        return results


@TRANSFORMS.register_module()
class RandomCropVideo:
    """Pad every side by ``padding`` (``pad_value``), then one random box."""

    def __init__(self, size, padding=0, pad_value=0):
        self.size = _pair(size, 'RandomCropVideo')
        self.padding, self.pad_value = int(padding), pad_value

    def __call__(self, results):
        clip = _clip(results, 'RandomCropVideo')
        p = self.padding
        if p:
            clip = np.pad(clip, ((0, 0), (p, p), (p, p), (0, 0)),
                          constant_values=self.pad_value)
        h, w = self.size
        if h > clip.shape[1] or w > clip.shape[2]:
            raise DataError(
                f'RandomCropVideo: crop {self.size} larger than the frames '
                f'{clip.shape[1:3]} (after padding)', path=results.get('path'))
        y = np.random.randint(0, clip.shape[1] - h + 1)
        x = np.random.randint(0, clip.shape[2] - w + 1)
        results['inputs'] = np.ascontiguousarray(clip[:, y:y + h, x:x + w])
        results['crop_box'] = (y, x, h, w)  # padded coordinates
        return results


@TRANSFORMS.register_module()
class CenterCropVideo:
    """Central ``size`` box: start ``(H - h) // 2``, ``(W - w) // 2``."""

    def __init__(self, size):
        self.size = _pair(size, 'CenterCropVideo')

    def __call__(self, results):
        clip = _clip(results, 'CenterCropVideo')
        h, w = self.size
        if h > clip.shape[1] or w > clip.shape[2]:
            raise DataError(f'CenterCropVideo: crop {self.size} larger than '
                            f'the frames {clip.shape[1:3]}',
                            path=results.get('path'))
        y, x = (clip.shape[1] - h) // 2, (clip.shape[2] - w) // 2
        results['inputs'] = np.ascontiguousarray(clip[:, y:y + h, x:x + w])
        results['crop_box'] = (y, x, h, w)
        return results


@TRANSFORMS.register_module()
class ResizeVideo:
    """Resize to ``(h, w)``; one of them ``-1`` keeps the aspect ratio."""

    def __init__(self, size):
        self.size = _pair(size, 'ResizeVideo')
        if self.size[0] == -1 and self.size[1] == -1:
            raise ConfigError('ResizeVideo: at most one side may be -1')

    def __call__(self, results):
        clip = _clip(results, 'ResizeVideo')
        H, W = clip.shape[1:3]
        h, w = self.size
        if h == -1:
            h = max(1, int(round(H * w / W)))
        if w == -1:
            w = max(1, int(round(W * h / H)))
        results['inputs'] = _resize_frames(clip, (h, w))
        return results


@TRANSFORMS.register_module()
class CropPadByRatioVideo:
    """Pad so that the aspect ratio ``W / H`` lies in ``allowed_ratio``.

    The short side is padded symmetrically (odd remainder at the end) with
    ``pad_value``. With ``pad=(lo, hi)``, a further border of a random
    fraction ``U(lo, hi)`` of each side's length is added around the frame
    (one draw per clip), zooming out as BIDL's ``min_padd``/``max_padd``.
    """

    def __init__(self, allowed_ratio=(1.0, 4 / 3), pad=None, pad_value=0):
        lo, hi = allowed_ratio
        if not 0 < lo <= hi:
            raise ConfigError('CropPadByRatioVideo: allowed_ratio must be '
                              '(min, max) with 0 < min <= max')
        self.lo, self.hi = lo, hi
        self.pad, self.pad_value = pad, pad_value

    def __call__(self, results):
        clip = _clip(results, 'CropPadByRatioVideo')
        H, W = clip.shape[1:3]
        top = bottom = left = right = 0
        if W / H > self.hi:  # too wide: add rows
            extra = int(math.ceil(W / self.hi)) - H
            top, bottom = extra // 2, extra - extra // 2
        elif W / H < self.lo:  # too tall: add columns
            extra = int(math.ceil(H * self.lo)) - W
            left, right = extra // 2, extra - extra // 2
        if self.pad is not None:
            f = np.random.uniform(*self.pad)
            by, bx = int(round(f * (H + top + bottom))), int(
                round(f * (W + left + right)))
            top, bottom, left, right = top + by, bottom + by, left + bx, \
                right + bx
        results['inputs'] = np.pad(
            clip, ((0, 0), (top, bottom), (left, right), (0, 0)),
            constant_values=self.pad_value)
        results['pad'] = (top, bottom, left, right)
        return results


@TRANSFORMS.register_module()
class RandomFlipVideo:
    """Horizontal flip of all frames with ``prob``.

    ``label_map`` (dict int -> int) gives the label of the flipped clip for
    classes whose direction flips; unlisted labels stay.
    """

    def __init__(self, prob=0.5, label_map=None):
        self.prob = float(prob)
        self.label_map = {int(k): int(v) for k, v in (label_map or {}).items()}

    def __call__(self, results):
        clip = _clip(results, 'RandomFlipVideo')
        flipped = bool(np.random.rand() < self.prob)
        if flipped:
            results['inputs'] = np.ascontiguousarray(clip[:, :, ::-1])
            label = results.get('label')
            if label is not None:
                results['label'] = self.label_map.get(int(label), label)
        results['flipped'] = flipped
        return results


@TRANSFORMS.register_module()
class ColorJitterVideo:
    """Brightness, contrast and saturation, one draw per clip (RGB)."""

    def __init__(self, brightness=0.0, contrast=0.0, saturation=0.0):
        self.brightness, self.contrast = brightness, contrast
        self.saturation = saturation

    def __call__(self, results):
        clip = _clip(results, 'ColorJitterVideo')
        dtype = clip.dtype
        x = clip.astype(np.float32)
        b = 1 + np.random.uniform(-self.brightness, self.brightness)
        c = 1 + np.random.uniform(-self.contrast, self.contrast)
        s = 1 + np.random.uniform(-self.saturation, self.saturation)
        x = x * b
        if x.shape[-1] == 3:
            grey = x @ np.array([0.299, 0.587, 0.114], np.float32)
            x = (x - grey.mean()) * c + grey.mean()
            grey = x @ np.array([0.299, 0.587, 0.114], np.float32)
            x = (x - grey[..., None]) * s + grey[..., None]
        else:
            x = (x - x.mean()) * c + x.mean()
        results['inputs'] = _finish(x, dtype)
        results['color_factors'] = (b, c, s)
        return results


@TRANSFORMS.register_module()
class CutoutVideo:
    """With ``prob``, fill one square of ``area`` of the frame in all frames.

    ``fill=None`` uses the clip mean per channel. Records ``cutout_box``
    ``(y, x, h, w)``, ``(0, 0, 0, 0)`` when no hole was cut.
    """

    def __init__(self, area=0.2, prob=0.5, fill=0):
        if not 0 < area < 1:
            raise ConfigError('CutoutVideo: area must be in (0, 1)')
        self.area, self.prob, self.fill = area, prob, fill

    def __call__(self, results):
        clip = _clip(results, 'CutoutVideo')
        # an empty box when no hole is cut: never None, which the batch
        # collate cannot stack with the boxes of other samples
        results['cutout_box'] = (0, 0, 0, 0)
        if np.random.rand() >= self.prob:
            return results
        H, W = clip.shape[1:3]
        side = max(1, int(round(math.sqrt(self.area * H * W))))
        h, w = min(side, H), min(side, W)
        y = np.random.randint(0, H - h + 1)
        x = np.random.randint(0, W - w + 1)
        clip = clip.copy()
        fill = clip.mean(axis=(0, 1, 2)) if self.fill is None else self.fill
        clip[:, y:y + h, x:x + w] = fill
        results['inputs'] = clip
        results['cutout_box'] = (y, x, h, w)
        return results


@TRANSFORMS.register_module()
class NormalizeVideo:
    """``(x - mean) / std`` per channel; output float32."""

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)
        if np.any(self.std <= 0):
            raise ConfigError('NormalizeVideo: std must be positive')

    def __call__(self, results):
        clip = _clip(results, 'NormalizeVideo')
        results['inputs'] = (clip.astype(np.float32) - self.mean) / self.std
        return results
