"""Synthetic "gestures" written in the DVS128 Gesture layout.

A demo data set that needs no download and that only a *temporal* model can
solve, shaped like DVS128 Gesture's "left/right arm (counter-)clockwise".
Two "hands" -- textured discs -- circle around two centres, one in the left
and one in the right half of a 128x128 sensor. The class is the pair of
rotation directions::

    class 0: left CW,  right CW      class 1: left CCW, right CCW
    class 2: left CW,  right CCW     class 3: left CCW, right CW

Each disc emits events uniformly in time, at uniformly random points of the
disc, with random polarity. A frame (events integrated over a time slice)
therefore shows two arc-shaped smears whose density is uniform along the
arc and which carry no polarity gradient: the smear of a clockwise slice is
the same picture as that of a counter-clockwise one. With random start
angles and speeds, every class has the same distribution of frames, so a
model that averages per-frame features over time is at chance; a model that
remembers where the disc was a frame ago sees which way it turns (a local
motion cue, within reach of small convolutions).

Speed (revolutions per sample), start angles, centres, radii and event
counts are jittered, and uniform background noise events are added.

Files written under ``root`` (exactly IBM's layout, read by
:class:`~bidl_train.datasets.dvs.DVS128Gesture`)::

    user{NN}_{condition}.aedat         AEDAT 3.1, one per user x condition
    user{NN}_{condition}_labels.csv    class,startTime_usec,endTime_usec
    trials_to_train.txt / trials_to_test.txt   (written last)
    synthetic.json                     the generator options (marks the
                                       folder as synthetic)
"""
import itertools
import json
import math
import os

import numpy as np
from mmengine.logging import print_log
from torch.utils.data import Dataset

from bidl_train.errors import DataError
from bidl_train.registry import DATASETS

from ..dvs import DVS128Gesture
from ..io import make_events, write_aedat31
from ..steps import config_arguments
from .ensure import generation_lock

CONDITIONS = ('fluorescent', 'fluorescent_led', 'lab', 'led', 'natural')
MARKER = 'synthetic.json'
SENSOR = 128


#: (left, right) rotation direction of each class; +1 = clockwise on the
#: image (y down), -1 = counter-clockwise.
CLASS_DIRECTIONS = ((1, 1), (-1, -1), (1, -1), (-1, 1))
#: centres of the two circles (x, y) in sensor pixels.
CENTRES = ((34.0, 64.0), (94.0, 64.0))


def class_directions(num_classes):
    """(left, right) rotation direction of each class."""
    if not 2 <= num_classes <= len(CLASS_DIRECTIONS):
        raise DataError(f'synthetic gestures support 2..'
                        f'{len(CLASS_DIRECTIONS)} classes, got '
                        f'num_classes={num_classes}')
    return list(CLASS_DIRECTIONS[:num_classes])


def class_names(num_classes):
    word = {1: 'cw', -1: 'ccw'}
    return [f'left {word[a]} right {word[b]}'
            for a, b in class_directions(num_classes)]


def _circling_disc(rng, centre, direction, t0, opt):
    """Events of one disc circling ``centre`` during ``[t0, t0 + duration)``.

    Angle ``theta(t) = theta0 + direction * 2 pi * rev * (t - t0) / duration``
    (y down, so increasing theta is clockwise on the image); each event lies
    at a uniform point of the disc around the current position.
    """
    n = int(opt['events_per_disc'] * rng.uniform(0.8, 1.2))
    dur = opt['duration_us']
    t = np.sort(rng.integers(0, dur, n))
    rev = rng.uniform(*opt['revolutions'])
    theta = rng.uniform(0, 2 * np.pi) + direction * 2 * np.pi * rev * t / dur
    radius = opt['circle_radius'] * rng.uniform(0.9, 1.1)
    cx, cy = np.asarray(centre) + rng.uniform(-3, 3, 2)
    blob = opt['disc_radius'] * rng.uniform(0.85, 1.15)
    r = blob * np.sqrt(rng.random(n))
    phi = rng.uniform(0, 2 * np.pi, n)
    x = np.rint(cx + radius * np.cos(theta) + r * np.cos(phi))
    y = np.rint(cy + radius * np.sin(theta) + r * np.sin(phi))
    x = np.clip(x, 0, SENSOR - 1).astype(np.int64)
    y = np.clip(y, 0, SENSOR - 1).astype(np.int64)
    return t0 + t, x, y, rng.integers(0, 2, n)


def _window(rng, directions, t_start, opt):
    """Events (t, x, y, p arrays) of one sample starting at ``t_start``."""
    parts = [_circling_disc(rng, c, d, t_start, opt)
             for c, d in zip(CENTRES, directions)]
    return ([np.concatenate(c) for c in zip(*parts)],
            t_start + opt['duration_us'])


def _noise(rng, t0, t1, rate_hz):
    n = rng.poisson(rate_hz * (t1 - t0) / 1e6)
    return (rng.integers(t0, t1, n), rng.integers(0, SENSOR, n),
            rng.integers(0, SENSOR, n), rng.integers(0, 2, n))


def _recording(rng, num_classes, opt):
    """All events of one recording and its label rows (class 1-based)."""
    directions = class_directions(num_classes)
    parts, rows = [], []
    t = int(rng.integers(1_000_000, 2_000_000))
    for cls in rng.permutation(num_classes):
        (wt, wx, wy, wp), t_end = _window(rng, directions[cls], t, opt)
        parts.append((wt, wx, wy, wp))
        rows.append((int(cls) + 1, t - opt['margin_us'],
                     t_end + opt['margin_us']))
        t = t_end + opt['pause_us']
    parts.append(_noise(rng, rows[0][1] - opt['pause_us'], t, opt['noise_hz']))
    t_all, x, y, p = (np.concatenate(c) for c in zip(*parts))
    order = np.argsort(t_all, kind='stable')
    return make_events(t_all[order], x[order], y[order], p[order]), rows


def default_options(**overrides):
    opt = dict(users_train=20, users_test=6, conditions=len(CONDITIONS),
               duration_us=500_000, revolutions=(1.0, 1.5),
               events_per_disc=1500, circle_radius=24.0, disc_radius=9.0,
               margin_us=2000, pause_us=200_000, noise_hz=1000.0, seed=0)
    unknown = set(overrides) - set(opt)
    if unknown:
        raise DataError(f'unknown synthetic gesture option(s) '
                        f'{sorted(unknown)}; known: {sorted(opt)}')
    opt.update(overrides)
    if not 1 <= opt['conditions'] <= len(CONDITIONS):
        raise DataError(f'conditions must be 1..{len(CONDITIONS)}')
    return opt


def make_synthetic_gestures(root, num_classes=4, **options):
    """Write the synthetic set under ``root`` (deterministic in ``seed``).

    Options (defaults): users_train=20, users_test=6, conditions=5 (lighting
    names per user, one recording each), duration_us=500000 (per sample),
    revolutions=(1.0, 1.5) (uniform range per disc and sample),
    events_per_disc=1500 (+-20 %), circle_radius=24.0 px, disc_radius=9.0 px,
    margin_us=2000 (window padding), pause_us=200000 (between windows),
    noise_hz=1000.0 (whole sensor), seed=0. Each
    recording holds one window per class, so train has
    ``users_train * conditions * num_classes`` samples (400 by default) and
    test ``users_test * conditions * num_classes`` (120).

    Returns the dict written to ``synthetic.json``.
    """
    class_directions(num_classes)  # validates num_classes
    opt = default_options(**options)
    root = os.fspath(root)
    os.makedirs(root, exist_ok=True)
    trials = {'train': [], 'test': []}
    users = [('train', u) for u in range(1, opt['users_train'] + 1)] + [
        ('test', u) for u in range(opt['users_train'] + 1,
                                   opt['users_train'] + opt['users_test'] + 1)]
    for split, user in users:
        for ci, cond in enumerate(CONDITIONS[:opt['conditions']]):
            # one generator per recording: the content does not depend on
            # which other recordings are generated
            rng = np.random.default_rng([opt['seed'], num_classes, user, ci])
            events, rows = _recording(rng, num_classes, opt)
            name = f'user{user:02d}_{cond}'
            write_aedat31(os.path.join(root, name + '.aedat'), events)
            _write_text(os.path.join(root, name + '_labels.csv'),
                        'class,startTime_usec,endTime_usec\n' + ''.join(
                            f'{c},{s},{e}\n' for c, s, e in rows))
            trials[split].append(name + '.aedat')
    info = dict(num_classes=num_classes, classes=class_names(num_classes),
                **opt)
    _write_text(os.path.join(root, MARKER), json.dumps(info, indent=1))
    for split, names in trials.items():
        _write_text(os.path.join(root, f'trials_to_{split}.txt'),
                    ''.join(n + '\n' for n in names))
    return info


def _write_text(path, text):
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w', encoding='utf-8', newline='') as f:
        f.write(text)
    os.replace(tmp, path)


def ensure_synthetic_gestures(root, num_classes=4, **options):
    """Generate the set under ``root`` unless it is already there with the
    same options. Refuses to write into a folder holding other data. Ranks
    of a distributed run building it at once wait for the first one."""
    root = os.fspath(root)
    if not os.path.isdir(root) or os.listdir(root):
        # (an empty or missing root is ours to fill; checked before the
        # lock file itself makes the folder non-empty)
        foreign = os.path.isdir(root) and not os.path.isfile(
            os.path.join(root, MARKER)) and not any(
                n.startswith('.synthetic-') for n in os.listdir(root))
        if foreign:
            raise DataError(
                'folder is not empty and holds no synthetic.json: refusing '
                'to write synthetic data into it; give SyntheticGesture an '
                'empty or new data_root', path=root)
    with generation_lock(root, 'SyntheticGesture'):
        _ensure_locked(root, num_classes, **options)


def _ensure_locked(root, num_classes, **options):
    # through JSON, as synthetic.json holds it (tuples become lists)
    want = json.loads(json.dumps(dict(
        num_classes=num_classes, classes=class_names(num_classes),
        **default_options(**options))))
    marker = os.path.join(root, MARKER)
    complete = all(
        os.path.isfile(os.path.join(root, f'trials_to_{s}.txt'))
        for s in ('train', 'test'))
    if os.path.isfile(marker):
        with open(marker, encoding='utf-8') as f:
            have = json.load(f)
        if have == want and complete:
            return
        print_log(f'SyntheticGesture: regenerating {root} (options changed)',
                  logger='current')
    print_log(f'SyntheticGesture: generating SYNTHETIC demo gestures '
              f'({num_classes} classes, DVS128 Gesture layout) into {root}',
              logger='current')
    make_synthetic_gestures(root, num_classes, **options)


@DATASETS.register_module()
class SyntheticGesture(Dataset):
    """Synthetic gestures, generated into ``data_root`` on first use and then
    read by the real :class:`DVS128Gesture` reader.

    Args:
        data_root: folder for the generated files (created if absent).
        num_classes: number of classes, 2..4 (direction pairs).
        split, representation, pipeline, cache, cache_dir: as in
            :class:`DVS128Gesture`.
        **generator_options: see :func:`make_synthetic_gestures`.
    """

    def __init__(self, data_root, num_classes=4, split='train',
                 representation=dict(type='EventFrames', split_by='number',
                                     size=32),
                 pipeline=(), cache=True, cache_dir=None,
                 **generator_options):
        ensure_synthetic_gestures(data_root, num_classes, **generator_options)
        self.reader = DVS128Gesture(data_root, split, representation,
                                    pipeline, cache, cache_dir,
                                    classes=class_names(num_classes))

    @property
    def metainfo(self):
        return dict(self.reader.metainfo, synthetic=True)

    @classmethod
    def stated_num_steps(cls, cfg):
        """As the reader's, with this class's default representation."""
        args = config_arguments(cls, cfg)
        return DVS128Gesture.stated_num_steps(dict(
            representation=args['representation'],
            pipeline=args['pipeline']))

    @property
    def records(self):
        return self.reader.records

    def __len__(self):
        return len(self.reader)

    def __getitem__(self, index):
        return self.reader[index]
