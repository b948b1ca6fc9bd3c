"""Event streams and samples as pictures: frame grids and GIFs.

A frame tensor ``[T, C, H, W]`` becomes ``T`` RGB images:

* ``C == 2`` (event polarity frames): white background, ON events red, OFF
  events blue, intensity proportional to the count (saturating at the
  99th percentile of non-zero counts, so one hot pixel does not wash out
  the rest);
* ``C == 1``: grey levels (depth slices of a volume);
* ``C == 3``: colour (video), rescaled to the clip's range.
"""
import textwrap

import numpy as np
from PIL import Image

from bidl_train.errors import DataError

from .figures import new_figure

__all__ = ['frames_grid_figure', 'frames_to_rgb', 'save_gif']

TITLE_FONTSIZE = 10


def _unit(values, low, high):
    span = high - low
    if span <= 0:
        return np.zeros_like(values, dtype=np.float32)
    return np.clip((values - low) / span, 0, 1).astype(np.float32)


def frames_to_rgb(frames):
    """``[T, C, H, W]`` (C in 1, 2, 3) -> ``uint8 [T, H, W, 3]``."""
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 4:
        raise DataError(
            f'expected frames [T, C, H, W], got shape {frames.shape}; text '
            'samples (token ids) have no picture')
    channels = frames.shape[1]
    if channels == 2:
        nonzero = frames[frames > 0]
        top = float(np.percentile(nonzero, 99)) if nonzero.size else 1.0
        on = _unit(frames[:, 1], 0, top)
        off = _unit(frames[:, 0], 0, top)
        rgb = np.stack([1 - off, 1 - on - off, 1 - on], axis=-1)
    elif channels == 1:
        grey = _unit(frames[:, 0], frames.min(), frames.max())
        rgb = np.repeat(grey[..., None], 3, axis=-1)
    elif channels == 3:
        rgb = _unit(frames.transpose(0, 2, 3, 1), frames.min(), frames.max())
    else:
        raise DataError(f'cannot draw frames with {channels} channels; '
                        'expected 1 (grey), 2 (event polarity) or 3 (RGB)')
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)


def frames_grid_figure(frames, title=None, cols=8, step_labels=None):
    """All frames in one figure, ``cols`` per row, each titled by its step."""
    rgb = frames_to_rgb(frames)
    steps = rgb.shape[0]
    cols = max(1, min(cols, steps))
    rows = -(-steps // cols)
    width = max(1.8 * cols, 3.0)
    title = _wrap(title, width, TITLE_FONTSIZE) if title else ''
    title_height = 0.25 * (title.count('\n') + 1) if title else 0.0
    # constrained layout reserves the suptitle's height above the first row
    fig = new_figure(width, 1.9 * rows + 0.1 + title_height,
                     layout='constrained')
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for t, ax in enumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        if t >= steps:
            ax.set_visible(False)
            continue
        ax.imshow(rgb[t], interpolation='nearest')
        label = step_labels[t] if step_labels else f't = {t}'
        ax.set_title(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=TITLE_FONTSIZE)
    return fig


def _wrap(text, width_inches, fontsize):
    """Break ``text`` into lines that fit ``width_inches`` (a character is
    at most about 0.7 em wide): a few frames make a narrow figure, and a long
    title would run off both sides."""
    chars = max(12, int(width_inches * 72 / (0.7 * fontsize)))
    return textwrap.fill(text, chars, break_long_words=False,
                         break_on_hyphens=False)


def save_gif(frames, path, fps=4, min_size=256):
    """Write frames ``[T, C, H, W]`` as a looping GIF, upscaled (nearest
    neighbour) so the short side is at least ``min_size`` pixels."""
    rgb = frames_to_rgb(frames)
    h, w = rgb.shape[1:3]
    scale = max(1, -(-min_size // max(1, min(h, w))))
    images = [
        Image.fromarray(frame).resize((w * scale, h * scale), Image.NEAREST)
        for frame in rgb
    ]
    images[0].save(path, format='GIF', save_all=True,
                   append_images=images[1:], loop=0,
                   duration=max(20, int(1000 / fps)))
    return path
