"""Synthetic "gestures" written in the DVS128 Gesture layout.

A demo data set that needs no download and that only a *temporal* model can
solve. P blob positions lie on a circle around the centre of a 128x128
sensor. A sample is ``cycles`` full cycles of flashes: a disc-shaped blob
appears at one position (a burst of ON events over its pixels), stays still
(no events), disappears (a burst of OFF events), then after a pause the
next position flashes. Class k visits the positions in its own cyclic order
(class 0 = 0,1,2,3; class 1 = its reverse 0,3,2,1; ...), starting at a
random position. Every sample therefore shows each position equally often,
with the same ON and OFF bursts: the multiset of flash images is the same
for every class and only the ORDER tells classes apart, so a model that
averages per-frame features over time is at chance while a model that
remembers the previous flash is not. Blob size, placement, timing and
per-pixel firing are jittered and uniform background noise events are added.

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

CONDITIONS = ('fluorescent', 'fluorescent_led', 'lab', 'led', 'natural')
MARKER = 'synthetic.json'
SENSOR = 128


def _num_positions(num_classes):
    """Smallest P >= 4 whose (P-1)! distinct cyclic orders cover the classes."""
    p = 4
    while math.factorial(p - 1) < num_classes:
        p += 1
    return p


def class_orders(num_classes):
    """Cyclic visiting order of each class, each order followed by its
    reverse: ``[(0,1,2,3), (0,3,2,1), (0,1,3,2), (0,2,3,1), ...]``."""
    p = _num_positions(num_classes)
    orders = []
    for rest in itertools.permutations(range(1, p)):
        for order in ((0, ) + rest, (0, ) + tuple(reversed(rest))):
            if order not in orders:
                orders.append(order)
    return orders[:num_classes]


def class_names(num_classes):
    return ['cycle ' + '-'.join(map(str, o)) for o in class_orders(num_classes)]


def _positions(p):
    """P blob centres on a circle of radius 36 px around the sensor centre."""
    angles = -0.75 * math.pi + 2 * math.pi * np.arange(p) / p
    return np.stack([64 + 36 * np.cos(angles), 64 + 36 * np.sin(angles)], 1)


def _burst(rng, centre, radius, t0, burst_us, polarity, fire_prob):
    """Events of a blob appearing (polarity 1) or disappearing (0)."""
    r = int(math.ceil(radius))
    cx, cy = int(round(centre[0])), int(round(centre[1]))
    ys, xs = np.mgrid[cy - r:cy + r + 1, cx - r:cx + r + 1]
    inside = ((xs - centre[0])**2 + (ys - centre[1])**2 <= radius**2) & \
        (xs >= 0) & (ys >= 0) & (xs < SENSOR) & (ys < SENSOR)
    xs, ys = xs[inside], ys[inside]
    fire = rng.random(xs.size) < fire_prob
    xs, ys = xs[fire], ys[fire]
    t = t0 + rng.integers(0, burst_us, xs.size)
    return t, xs, ys, np.full(xs.size, polarity)


def _window(rng, order, t_start, opt):
    """Events (t, x, y, p arrays) of one sample starting at ``t_start``."""
    centres = _positions(len(order))
    phase = int(rng.integers(len(order)))
    seq = [order[(phase + i) % len(order)]
           for i in range(opt['cycles'] * len(order))]
    parts, t = [], t_start
    for pos in seq:
        centre = centres[pos] + rng.uniform(-4, 4, 2)
        radius = opt['blob_radius'] * rng.uniform(0.85, 1.15)
        hold = int(opt['hold_us'] * rng.uniform(0.8, 1.2))
        parts.append(_burst(rng, centre, radius, t, opt['burst_us'], 1,
                            opt['fire_prob']))
        t_off = t + opt['burst_us'] + hold
        parts.append(_burst(rng, centre, radius, t_off, opt['burst_us'], 0,
                            opt['fire_prob']))
        t = t_off + opt['burst_us'] + int(opt['gap_us'] * rng.uniform(0.8,
                                                                    1.2))
    return [np.concatenate(c) for c in zip(*parts)], t


def _noise(rng, t0, t1, rate_hz):
    n = rng.poisson(rate_hz * (t1 - t0) / 1e6)
    return (rng.integers(t0, t1, n), rng.integers(0, SENSOR, n),
            rng.integers(0, SENSOR, n), rng.integers(0, 2, n))


def _recording(rng, num_classes, opt):
    """All events of one recording and its label rows (class 1-based)."""
    orders = class_orders(num_classes)
    parts, rows = [], []
    t = int(rng.integers(1_000_000, 2_000_000))
    for cls in rng.permutation(num_classes):
        (wt, wx, wy, wp), t_end = _window(rng, orders[cls], t, opt)
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
               cycles=2, blob_radius=14.0, fire_prob=0.5, burst_us=4000,
               hold_us=30000, gap_us=20000, margin_us=2000,
               pause_us=200000, noise_hz=1000.0, seed=0)
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
    names per user, one recording each), cycles=2, blob_radius=14.0 px,
    fire_prob=0.5, burst_us=4000, hold_us=30000, gap_us=20000,
    margin_us=2000, pause_us=200000, noise_hz=1000.0, seed=0. Each
    recording holds one window per class, so train has
    ``users_train * conditions * num_classes`` samples (400 by default) and
    test ``users_test * conditions * num_classes`` (120).

    Returns the dict written to ``synthetic.json``.
    """
    if num_classes < 2:
        raise DataError(f'num_classes must be >= 2, got {num_classes}')
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
    same options. Refuses to write into a folder holding other data."""
    root = os.fspath(root)
    want = dict(num_classes=num_classes, classes=class_names(num_classes),
                **default_options(**options))
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
    elif os.path.isdir(root) and os.listdir(root):
        raise DataError(
            'folder is not empty and holds no synthetic.json: refusing to '
            'write synthetic data into it; give SyntheticGesture an empty '
            'or new data_root', path=root)
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
        num_classes: number of classes (cyclic visiting orders).
        split, representation, pipeline, cache, cache_dir: as in
            :class:`DVS128Gesture`.
        **generator_options: see :func:`make_synthetic_gestures`.
    """

    def __init__(self, data_root, num_classes=4, split='train',
                 representation=dict(type='EventFrames', T=16,
                                     split_by='number', size=32),
                 pipeline=(), cache=True, cache_dir=None,
                 **generator_options):
        ensure_synthetic_gestures(data_root, num_classes, **generator_options)
        self.reader = DVS128Gesture(data_root, split, representation,
                                    pipeline, cache, cache_dir,
                                    classes=class_names(num_classes))

    @property
    def metainfo(self):
        return dict(self.reader.metainfo, synthetic=True)

    @property
    def records(self):
        return self.reader.records

    def __len__(self):
        return len(self.reader)

    def __getitem__(self, index):
        return self.reader[index]
