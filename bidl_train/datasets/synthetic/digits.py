"""Synthetic handwritten-like digits written as MNIST IDX files.

Each image is one digit glyph drawn with an OpenCV Hershey font (a random
one of six), random scale and stroke thickness, then rotated (+-15 deg),
shifted (+-2 px), blurred and speckled with noise: a 10-class problem whose
classes differ by shape, not by a global statistic. Labels cycle 0..9 so
every split is balanced.

Files (the MNIST names and IDX layout, readable by
:class:`bidl_train.datasets.static.MNIST`)::

    <root>/train-images-idx3-ubyte   magic 2051, [N, size, size] uint8
    <root>/train-labels-idx1-ubyte   magic 2049, [N] uint8
    <root>/t10k-images-idx3-ubyte
    <root>/t10k-labels-idx1-ubyte
"""
import os
import os.path as osp

import cv2
import numpy as np

from bidl_train.datasets.static import IDX_FILES, write_idx

_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX,
          cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX,
          cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX)


def render_digit(rng, digit, size=28):
    """One ``uint8 [size, size]`` image of ``digit`` (white on black)."""
    canvas = np.zeros((size * 2, size * 2), np.uint8)
    font = _FONTS[int(rng.integers(len(_FONTS)))]
    thickness = int(rng.integers(2, 5))
    scale = float(rng.uniform(1.3, 1.9))
    if font == cv2.FONT_HERSHEY_PLAIN:
        scale *= 2.0  # the plain font is drawn at half the size
    text = str(int(digit))
    (w, h), _ = cv2.getTextSize(text, font, scale, thickness)
    org = ((canvas.shape[1] - w) // 2, (canvas.shape[0] + h) // 2)
    cv2.putText(canvas, text, org, font, scale, 255, thickness, cv2.LINE_AA)
    centre = (canvas.shape[1] / 2.0, canvas.shape[0] / 2.0)
    rot = cv2.getRotationMatrix2D(centre, float(rng.uniform(-15, 15)), 1.0)
    rot[:, 2] += rng.uniform(-4, 4, 2)  # shift in the 2x canvas
    canvas = cv2.warpAffine(canvas, rot, canvas.shape[::-1])
    image = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    image = cv2.GaussianBlur(image, (3, 3), float(rng.uniform(0.1, 0.8)))
    noise = rng.normal(0.0, 12.0, image.shape)
    return np.clip(image.astype(np.float64) + noise, 0, 255).astype(np.uint8)


def make_synthetic_digits(root, num_train=2000, num_test=500, size=28,
                          seed=0):
    """Write the four MNIST IDX files of a synthetic digit set to ``root``.

    Returns the dict ``{name: path}`` of the written files. Files are
    written under temporary names and renamed into place.
    """
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    written = {}
    for split, n in (('train', num_train), ('test', num_test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = np.stack([render_digit(rng, y, size) for y in labels]) \
            if n else np.zeros((0, size, size), np.uint8)
        for kind, array in (('images', images), ('labels', labels)):
            name = IDX_FILES[split][kind]
            path = osp.join(root, name)
            tmp = f'{path}.tmp{os.getpid()}'
            write_idx(tmp, array)
            os.replace(tmp, path)
            written[name] = path
    return written
