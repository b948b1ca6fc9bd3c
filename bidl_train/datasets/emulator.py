"""DVS emulator: intensity frames -> events (a v2e-style pixel model).

Pixel model. Each pixel keeps a reference log intensity ``L_ref`` (set from
the first frame). Between frames ``k`` and ``k + 1`` (times ``t_k``,
``t_{k+1}``) the log intensity ``L = log(I + eps)`` is taken to change
linearly from ``L_k`` to ``L_{k+1}``. Whenever it crosses
``L_ref + n C_on`` (upwards) or ``L_ref - n C_off`` (downwards) the pixel
emits one ON (p = 1) or OFF (p = 0) event at the crossing time and moves
``L_ref`` by one threshold. With ``d = L_{k+1} - L_ref`` the pixel emits
``n = floor(d / C_on)`` ON events (``d > 0``) at::

    t_j = t_k + (t_{k+1} - t_k) * (L_ref + j C_on - L_k) / (L_{k+1} - L_k),
    j = 1 .. n

and likewise OFF events. So a pixel that brightens by exactly k thresholds
from one frame to the next fires k ON events at ``t_k + j (t_{k+1} - t_k)
/ k``. (A tolerance of 1e-9 thresholds absorbs floating-point error in
``d / C``.)

Refractory period. After an event a pixel is blind for ``refractory`` us:
a crossing less than that after the pixel's last *emitted* event is not
emitted. The reference still moves past it, as a real pixel that resets to
the current level when its refractory period ends, so the suppressed
change is lost rather than emitted later.

Non-idealities (all drawn from the emulator's own seeded generator):

* ``threshold_sigma``: per-pixel thresholds ``C ~ N(C, (sigma C)^2)``
  (fixed-pattern mismatch), drawn once per call, floored at ``0.01``.
* ``shot_noise_rate``: spontaneous events, Poisson with this rate (Hz) per
  pixel, random polarity, uniform times; they do not move ``L_ref``.

Saccades (still images, as N-MNIST was recorded): :func:`saccade_frames`
moves the image along a triangle of three saccades (sub-pixel shifts by
bilinear warping), giving a short video to emulate.

The loops run over frames and over the crossing rank ``j`` (at most a few
per frame pair); everything per pixel and per event is vectorised.
"""
import cv2
import numpy as np

from bidl_train.errors import DataError
from bidl_train.registry import TRANSFORMS

from .io.events import EVENT_DTYPE, empty_events
from .seeding import TransformRNG

#: tolerance, in thresholds, when counting crossings (floating-point error)
_CROSS_TOL = 1e-9


def to_gray(frames, channels_last=None):
    """Intensity in ``[0, 1]`` float64 ``[T, H, W]`` from ``[T, H, W]``,
    ``[T, H, W, C]`` or ``[T, C, H, W]`` frames (C = 1 or 3, uint8 read as
    ``/255``; colour frames as BGR, cv2's order, with luma weights
    0.114 B + 0.587 G + 0.299 R).

    ``channels_last`` picks the layout of 4-D input; None guesses it from
    which of axes 1 and 3 has size 1 or 3.
    """
    x = np.asarray(frames)
    scale = 255.0 if x.dtype == np.uint8 else 1.0
    x = x.astype(np.float64) / scale
    if x.ndim == 3:
        return x
    if x.ndim != 4:
        raise DataError(f'frames must be [T, H, W], [T, H, W, C] or '
                        f'[T, C, H, W]; got shape {x.shape}')
    if channels_last is None:
        channels_last = x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3)
    if not channels_last:
        x = np.moveaxis(x, 1, -1)
    if x.shape[-1] == 1:
        return x[..., 0]
    if x.shape[-1] != 3:
        raise DataError(f'frames need 1 or 3 channels, got {x.shape[-1]}')
    return x @ np.array([0.114, 0.587, 0.299])


def emulate_events(frames, timestamps, pos_threshold=0.2,
                   neg_threshold=0.2, refractory=0, log_eps=1e-3,
                   threshold_sigma=0.0, shot_noise_rate=0.0, seed=None):
    """Events of a grey video (see the module doc for the model).

    Args:
        frames: ``[T, H, W]`` intensities (any layout :func:`to_gray`
            accepts).
        timestamps: ``[T]`` frame times in us (increasing).
        pos_threshold, neg_threshold: ON / OFF contrast thresholds in log
            intensity (0.2 = about 22% brighter / 18% darker).
        refractory: refractory period in us.
        log_eps: ``L = log(I + log_eps)``, so black pixels stay finite.
        threshold_sigma: relative spread of per-pixel thresholds.
        shot_noise_rate: noise events per pixel per second.
        seed: seed of this call's generator (None = OS entropy).

    Returns:
        EVENT_DTYPE array sorted by time (stable: events with equal times
        keep their emission order, by crossing rank then pixel index).
    """
    gray = to_gray(frames)
    t = np.asarray(timestamps, dtype=np.float64)
    if t.shape != (gray.shape[0], ):
        raise DataError(f'{gray.shape[0]} frames but timestamps of shape '
                        f'{t.shape}')
    if gray.shape[0] and np.any(np.diff(t) <= 0):
        raise DataError('frame timestamps must increase strictly')
    if pos_threshold <= 0 or neg_threshold <= 0:
        raise DataError('contrast thresholds must be > 0, got '
                        f'{pos_threshold}, {neg_threshold}')
    if gray.shape[0] < 2:
        return empty_events()
    rng = np.random.default_rng(seed)
    H, W = gray.shape[1:]
    c_on = np.full(H * W, float(pos_threshold))
    c_off = np.full(H * W, float(neg_threshold))
    if threshold_sigma > 0:
        c_on = np.maximum(rng.normal(c_on, threshold_sigma * c_on), 0.01)
        c_off = np.maximum(rng.normal(c_off, threshold_sigma * c_off), 0.01)
    logs = np.log(gray.reshape(gray.shape[0], -1) + log_eps)
    ref = logs[0].copy()
    last = np.full(H * W, -np.inf)  # time of each pixel's last event
    chunks = []
    for k in range(gray.shape[0] - 1):
        l0, l1, t0, t1 = logs[k], logs[k + 1], t[k], t[k + 1]
        slope = l1 - l0
        diff = l1 - ref
        n_on = np.floor(np.maximum(diff, 0) / c_on + _CROSS_TOL)
        n_off = np.floor(np.maximum(-diff, 0) / c_off + _CROSS_TOL)
        n = np.where(diff > 0, n_on, n_off).astype(np.int64)
        step = np.where(diff > 0, c_on, -c_off)
        moving = np.flatnonzero(n)
        # crossing rank j: a handful of iterations, each over all pixels
        for j in range(1, int(n.max(initial=0)) + 1):
            pix = moving[n[moving] >= j]
            level = ref[pix] + j * step[pix]
            # slope != 0 wherever a crossing exists (|L_ref - L_k| < C)
            frac = (level - l0[pix]) / slope[pix]
            tj = t0 + (t1 - t0) * np.clip(frac, 0.0, 1.0)
            fire = tj - last[pix] >= refractory
            pix, tj = pix[fire], tj[fire]
            last[pix] = tj
            chunks.append((tj, pix, (step[pix] > 0).astype(np.uint8)))
        ref += n * step
        if shot_noise_rate > 0:
            count = rng.poisson(shot_noise_rate * (t1 - t0) * 1e-6 * H * W)
            chunks.append((rng.uniform(t0, t1, count),
                           rng.integers(0, H * W, count),
                           rng.integers(0, 2, count).astype(np.uint8)))
    if not chunks:
        return empty_events()
    times = np.concatenate([c[0] for c in chunks])
    pixels = np.concatenate([c[1] for c in chunks])
    pols = np.concatenate([c[2] for c in chunks])
    order = np.argsort(times, kind='stable')
    events = np.empty(times.size, EVENT_DTYPE)
    events['t'] = np.rint(times[order])
    events['x'] = pixels[order] % W
    events['y'] = pixels[order] // W
    events['p'] = pols[order]
    return events


def saccade_frames(image, amplitude=3.0, steps=10, saccade_us=100_000,
                   pad=None):
    """A still image moved along three saccades, as N-MNIST was recorded.

    The image (``[H, W]`` or ``[H, W, C]``, or ``[C, H, W]`` with C <= 4)
    is placed on a zero canvas with ``pad`` pixels on each side (default
    ``ceil(amplitude)``) and shifted along the triangle
    ``(0, 0) -> (a/2, a) -> (a, 0) -> (0, 0)`` (dx, dy in pixels, ``a =
    amplitude``), ``steps`` frames per saccade, each saccade lasting
    ``saccade_us``. Sub-pixel shifts use bilinear interpolation.

    Returns ``(frames [3*steps + 1, H + 2 pad, W + 2 pad(, C)] float64,
    timestamps [3*steps + 1] us)``.
    """
    img = np.asarray(image)
    if img.dtype == np.uint8:
        img = img.astype(np.float64) / 255.0
    img = img.astype(np.float32)
    if img.ndim == 3 and img.shape[0] <= 4 and img.shape[-1] > 4:
        img = np.moveaxis(img, 0, -1)
    if img.ndim not in (2, 3):
        raise DataError(f'saccades need one image [H, W](, C), got shape '
                        f'{img.shape}')
    pad = int(np.ceil(amplitude)) if pad is None else int(pad)
    widths = ((pad, pad), (pad, pad)) + (((0, 0), ) if img.ndim == 3 else ())
    canvas = np.pad(img, widths)
    h, w = canvas.shape[:2]
    a = float(amplitude)
    corners = np.array([(0, 0), (a / 2, a), (a, 0), (0, 0)])
    path = [corners[0]]
    for c0, c1 in zip(corners[:-1], corners[1:]):
        frac = np.arange(1, steps + 1)[:, None] / steps
        path.extend(c0 + (c1 - c0) * frac)
    frames = np.stack([
        cv2.warpAffine(canvas, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h),
                       flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT).reshape(canvas.shape)
        for dx, dy in path]).astype(np.float64)
    times = np.arange(len(path)) * (saccade_us / steps)
    return frames, times


@TRANSFORMS.register_module()
class DVSEmulator:
    """Turn a clip (or a still image) in ``results`` into events.

    Reads ``results[key]``: a clip ``[T, H, W]``, ``[T, H, W, C]`` (the
    video transforms' layout) or ``[T, C, H, W]``; with ``saccades`` set, a
    single image ``[H, W]``, ``[H, W, C]`` or ``[C, H, W]`` moved by
    :func:`saccade_frames` first. Frame times are
    ``results['timestamps']`` (us) if present, else ``i * 1e6 / fps``.
    Writes ``results['events']`` and ``results['sensor_size'] = (H, W)``
    (a representation such as ``EventFrames`` may follow) and removes
    ``results[key]``.

    Args:
        pos_threshold, neg_threshold, refractory, log_eps, threshold_sigma,
            shot_noise_rate: see :func:`emulate_events`.
        fps: frame rate when the results carry no timestamps.
        saccades: None, or a dict of :func:`saccade_frames` arguments.
        key: where the clip is.
        seed: seed of this transform's generator (each call draws its own
            sub-seed from it, so a run is repeatable and samples differ).
    """

    def __init__(self, pos_threshold=0.2, neg_threshold=0.2, refractory=0,
                 log_eps=1e-3, threshold_sigma=0.0, shot_noise_rate=0.0,
                 fps=30.0, saccades=None, key='inputs', seed=None):
        self.params = dict(pos_threshold=pos_threshold,
                           neg_threshold=neg_threshold, refractory=refractory,
                           log_eps=log_eps, threshold_sigma=threshold_sigma,
                           shot_noise_rate=shot_noise_rate)
        self.fps, self.key = fps, key
        self.saccades = saccades
        self.rng = TransformRNG(seed)

    def __call__(self, results):
        if self.key not in results:
            raise DataError(f'DVSEmulator needs results["{self.key}"] (a '
                            'clip or, with saccades, an image)')
        data = np.asarray(results.pop(self.key))
        if self.saccades is not None:
            frames, times = saccade_frames(data, **self.saccades)
        else:
            frames = data
            times = results.get('timestamps')
            if times is None:
                times = np.arange(len(frames)) * (1e6 / self.fps)
        gray = to_gray(frames)
        results['events'] = emulate_events(
            gray, times, seed=int(self.rng.integers(2**63)), **self.params)
        results['sensor_size'] = tuple(gray.shape[1:])
        return results

    def __repr__(self):
        args = ', '.join(f'{k}={v!r}' for k, v in self.params.items())
        return f'DVSEmulator({args}, fps={self.fps}, saccades={self.saccades})'


__all__ = ['DVSEmulator', 'emulate_events', 'saccade_frames', 'to_gray']
