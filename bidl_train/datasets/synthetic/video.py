"""Synthetic gesture clips in the 20BN-Jester layout (JPEG frames).

A clip is a noisy, mildly textured background with one bright "hand" blob.
Its class is defined only by motion, so a single frame cannot tell it:

* ``Swiping Left`` / ``Swiping Right`` / ``Swiping Up`` / ``Swiping Down``:
  the blob crosses the frame in that direction;
* ``Zooming In With Full Hand`` / ``Zooming Out With Full Hand``: the blob
  stays near the centre and grows / shrinks: the same sizes appear in both,
  only their ORDER differs.

(Directions are as seen in the image: "left" = decreasing x.) Start
position, speed, blob colour and noise vary per clip.

Files: ``<root>/20bn-jester-v1/<id>/00001.jpg ...``,
``<root>/jester-v1-labels.csv`` (one name per line),
``<root>/jester-v1-train.csv`` / ``jester-v1-validation.csv`` (``id;label``).
"""
import os
import os.path as osp
import shutil

import cv2
import numpy as np

SYNTHETIC_GESTURES = ('Swiping Left', 'Swiping Right', 'Swiping Up',
                      'Swiping Down', 'Zooming In With Full Hand',
                      'Zooming Out With Full Hand')


def gesture_clip(rng, gesture, num_frames=12, height=50, width=88):
    """``uint8 [num_frames, H, W, 3]`` RGB frames of one gesture."""
    t = np.linspace(0.0, 1.0, num_frames)
    jitter = rng.uniform(-0.1, 0.1, 2)
    if gesture in SYNTHETIC_GESTURES[:4]:
        a, b = rng.uniform(0.15, 0.3), rng.uniform(0.7, 0.85)
        prog = a + (b - a) * t
        fixed = np.full(num_frames, 0.5 + jitter[0])
        xs, ys = {
            'Swiping Left': (1 - prog, fixed),
            'Swiping Right': (prog, fixed),
            'Swiping Up': (fixed, 1 - prog),
            'Swiping Down': (fixed, prog),
        }[gesture]
        radius = np.full(num_frames, rng.uniform(0.12, 0.18) * height)
    else:
        xs = np.full(num_frames, 0.5 + jitter[0])
        ys = np.full(num_frames, 0.5 + jitter[1])
        small, big = rng.uniform(0.08, 0.12), rng.uniform(0.3, 0.38)
        grow = small + (big - small) * t
        radius = (grow if gesture.startswith('Zooming In') else
                  grow[::-1]) * height
    colour = rng.uniform(180, 255, 3)
    base = rng.uniform(30, 80, 3)
    yy, xx = np.mgrid[:height, :width]
    frames = []
    for i in range(num_frames):
        cx, cy = xs[i] * width, ys[i] * height
        d2 = (xx - cx)**2 + (yy - cy)**2
        blob = np.exp(-d2 / (2 * radius[i]**2))[..., None]
        frame = base + (colour - base) * blob + rng.normal(0, 6,
                                                          (height, width, 3))
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return np.stack(frames)


def make_synthetic_jester(root,
                          num_train_per_class=8,
                          num_val_per_class=4,
                          num_frames=12,
                          height=50,
                          width=88,
                          seed=0):
    """Write synthetic gesture clips in the Jester layout under ``root``.

    Written into a temporary folder inside ``root`` and moved into place
    entry by entry, so a reader never sees half a clip folder. Returns
    ``root``.
    """
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    tmp = osp.join(root, f'.jester.tmp{os.getpid()}')
    shutil.rmtree(tmp, ignore_errors=True)
    frames_dir = osp.join(tmp, '20bn-jester-v1')
    os.makedirs(frames_dir)
    with open(osp.join(tmp, 'jester-v1-labels.csv'), 'w') as f:
        f.write(''.join(f'{g}\n' for g in SYNTHETIC_GESTURES))
    video_id = 1
    for csv_name, per_class in (('jester-v1-train.csv', num_train_per_class),
                                ('jester-v1-validation.csv',
                                 num_val_per_class)):
        rows = []
        for _ in range(per_class):
            for gesture in SYNTHETIC_GESTURES:
                clip = gesture_clip(rng, gesture, num_frames, height, width)
                folder = osp.join(frames_dir, str(video_id))
                os.makedirs(folder)
                for i, frame in enumerate(clip):
                    # OpenCV writes BGR; our frames are RGB
                    cv2.imwrite(osp.join(folder, f'{i + 1:05d}.jpg'),
                                frame[..., ::-1],
                                [cv2.IMWRITE_JPEG_QUALITY, 95])
                rows.append(f'{video_id};{gesture}\n')
                video_id += 1
        with open(osp.join(tmp, csv_name), 'w') as f:
            f.writelines(rows)
    # the labels and split files last: readers start from them
    for name in ('20bn-jester-v1', 'jester-v1-labels.csv',
                 'jester-v1-validation.csv', 'jester-v1-train.csv'):
        os.replace(osp.join(tmp, name), osp.join(root, name))
    os.rmdir(tmp)
    return root
