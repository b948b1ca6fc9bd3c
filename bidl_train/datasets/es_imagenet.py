"""ES-ImageNet (Lin et al., Front. Neurosci. 2021): ImageNet-1k as events.

Each ILSVRC-2012 image was resized (longer side 254), padded by 2 and moved
along a fixed 8-step trace (the "Omnidirectional Discrete Gradient"); pixel
changes above a threshold became ON / OFF events. 1000 classes, 8 time
steps, 1,257,035 train / 49,244 val samples.

Layout of the release (``ES-imagenet-0.18/``), as written by the authors'
converter and read by their loader::

    <root>/trainlabel.txt      "<relpath> <label> <a> <b>" per line, e.g.
                               "class0/class0_1.npz 0 254 190"
    <root>/vallabel.txt        "ILSVRC2012_val_00040551.npz 349 194 254"
    <root>/train/class<k>/class<k>_<n>.npz
    <root>/val/ILSVRC2012_val_<8 digits>.npz

``<label>`` is the class index 0..999; ``a``, ``b`` are the height and
width of the resized image. Every ``.npz`` holds two ``uint8 [N, 3]``
arrays, ``pos`` (ON events) and ``neg`` (OFF events), with columns
``(x, y, t)``: ``x`` the row and ``y`` the column in the padded image,
``t`` the step 1..8.

Frames (the authors' loader, reproduced exactly): a ``[8, 2, 256, 256]``
zero canvas; event ``(x, y, t)`` sets pixel ``(t - 1, x + dx, y + dy)``
to 1 with ``dx = (254 - a) // 2``, ``dy = (254 - b) // 2`` (centring the
image); the canvas is cropped to rows and columns ``16:240`` (224 x 224).
Channel order follows this project's convention (channel 0 = OFF =
``neg``, channel 1 = ON = ``pos``; the authors' loader puts ``pos``
first). A line whose path does not end in ``.npz`` (lists made from the
JPEG names) has its extension replaced by ``.npz``, as the authors' loader
does.

Sample: ``{'inputs': FloatTensor [8, 2, 224, 224], 'label': int,
'sample_idx': int, 'path': str}``.
"""
import os.path as osp

import numpy as np
import torch
from mmengine.dataset import Compose
from torch.utils.data import Dataset

from bidl_train.errors import DataError
from bidl_train.registry import DATASETS, TRANSFORMS

from .io.npy import load_checked
from .paths import check_relative, open_annotation, resolve_inside
from .pipeline import compose as _compose
from .pipeline import transforms_num_steps

#: Label list and sample folder of each split.
SPLITS = {
    'train': ('trainlabel.txt', 'train'),
    'val': ('vallabel.txt', 'val'),
}
NUM_CLASSES = 1000
TIME_STEPS = 8
CANVAS = 256
CENTRE = 254  # the longer side after resizing
CROP = (16, 240)


def read_label_list(path):
    """Parse a label list into ``[(relpath, label, a, b)]``."""
    return [item for _, item in _read_label_lines(path)]


def _read_label_lines(path):
    """``[(line number, (relpath, label, a, b))]`` of a label list; a path
    leaving the split folder is refused (see :mod:`.paths`)."""
    if not osp.isfile(path):
        raise DataError(
            'ES-ImageNet label list not found; see '
            'datasets/ES-ImageNet/README.md for the expected layout',
            path=path)
    items = []
    with open_annotation(path) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 4:
                raise DataError(
                    f'line {lineno}: expected "<file> <label> <a> <b>", got '
                    f'{line.strip()!r}', path=path)
            name, label, a, b = parts
            try:
                label, a, b = int(label), int(a), int(b)
            except ValueError:
                raise DataError(
                    f'line {lineno}: label, a and b must be integers, got '
                    f'{line.strip()!r}', path=path) from None
            check_relative(name, source=path, line=lineno)
            if not name.endswith('.npz'):
                name = osp.splitext(name)[0] + '.npz'
            items.append((lineno, (name, label, a, b)))
    if not items:
        raise DataError('the label list is empty', path=path)
    return items


def load_events(path):
    """``(pos, neg)`` event arrays ``int64 [N, 3]`` (x, y, t) of a sample."""
    if not osp.isfile(path):
        raise DataError('sample file listed in the label list is missing',
                        path=path)
    try:
        with load_checked(path) as npz:
            missing = {'pos', 'neg'} - set(npz.files)
            if missing:
                raise DataError(
                    f'missing arrays {sorted(missing)} (has '
                    f'{sorted(npz.files)}); ES-ImageNet files hold "pos" '
                    'and "neg"', path=path)
            pos, neg = npz['pos'], npz['neg']
    except (OSError, ValueError, EOFError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f'not a readable .npz ({e})', path=path) from None
    out = []
    for name, arr in (('pos', pos), ('neg', neg)):
        arr = np.asarray(arr)
        if arr.size == 0:
            arr = arr.reshape(0, 3)
        if arr.ndim != 2 or arr.shape[1] != 3:
            raise DataError(
                f'"{name}" must be [N, 3] (x, y, t), got {arr.shape}',
                path=path)
        out.append(arr.astype(np.int64))
    return tuple(out)


def events_to_frames(pos, neg, a, b, T=TIME_STEPS, crop=CROP, path=None):
    """The authors' frame construction (see module doc) as float32 numpy.

    Returns ``[T, 2, crop[1] - crop[0], crop[1] - crop[0]]`` with channel 0
    from ``neg`` and channel 1 from ``pos``.
    """
    dx, dy = (CENTRE - a) // 2, (CENTRE - b) // 2
    canvas = np.zeros((T, 2, CANVAS, CANVAS), np.float32)
    for channel, ev in ((0, neg), (1, pos)):
        if not len(ev):
            continue
        rows, cols, t = ev[:, 0] + dx, ev[:, 1] + dy, ev[:, 2] - 1
        if t.min() < 0 or t.max() >= T:
            raise DataError(
                f'event time steps must be 1..{T}, found '
                f'{t.min() + 1}..{t.max() + 1}', path=path)
        if (rows.min() < 0 or cols.min() < 0 or rows.max() >= CANVAS
                or cols.max() >= CANVAS):
            raise DataError(
                f'events fall outside the {CANVAS}x{CANVAS} canvas after '
                f'centring (a={a}, b={b}); wrong a/b in the label list?',
                path=path)
        canvas[t, channel, rows, cols] = 1.0
    lo, hi = crop
    return canvas[:, :, lo:hi, lo:hi]


@DATASETS.register_module()
class ESImageNet(Dataset):
    """ES-ImageNet event frames ``[8, 2, 224, 224]``, 1000 classes.

    Args:
        data_root (str): the release folder (``ES-imagenet-0.18``).
        split (str): ``'train'`` or ``'val'``.
        pipeline (list): transforms on the sample dict.
        classes (list[str] | None): class names; default ``class0`` ..
            ``class999`` (the release's folder names).
        crop (tuple[int, int]): rows / columns kept of the 256 canvas
            (default the authors' ``16:240``).
    """

    def __init__(self, data_root, split='train', pipeline=(), classes=None,
                 crop=CROP):
        if split not in SPLITS:
            raise DataError(
                f"split must be one of {sorted(SPLITS)}, got {split!r}",
                path=data_root)
        label_file, folder = SPLITS[split]
        self.data_root = data_root
        self.folder = osp.join(data_root, folder)
        self.label_file = osp.join(data_root, label_file)
        self._classes = list(classes) if classes is not None else [
            f'class{k}' for k in range(NUM_CLASSES)
        ]
        self.crop = tuple(crop)
        if not 0 <= self.crop[0] < self.crop[1] <= CANVAS:
            raise DataError(f'crop must satisfy 0 <= lo < hi <= {CANVAS}, '
                            f'got {crop}', path=data_root)
        self._lines = _read_label_lines(self.label_file)
        self._items = [item for _, item in self._lines]
        self._split_folder = folder
        for name, label, _, _ in self._items:
            if not 0 <= label < len(self._classes):
                raise DataError(
                    f'label {label} of {name} is outside the '
                    f'{len(self._classes)} classes', path=self.label_file)
        self.pipeline = Compose([
            TRANSFORMS.build(t) if isinstance(t, dict) else t
            for t in (pipeline or [])
        ])

    @property
    def metainfo(self):
        # the release stores TIME_STEPS frames per sample
        return dict(classes=list(self._classes),
                    num_steps=transforms_num_steps(self.pipeline.transforms,
                                                   TIME_STEPS))

    @classmethod
    def stated_num_steps(cls, cfg):
        """:data:`TIME_STEPS`, unless the pipeline makes other steps."""
        return transforms_num_steps(
            _compose(cfg.get('pipeline') or ()).transforms, TIME_STEPS)

    def __len__(self):
        return len(self._items)

    def __getitem__(self, idx):
        idx = range(len(self))[idx]
        lineno, (name, label, a, b) = self._lines[idx]
        # checked here rather than for all 1.26M lines up front: resolving
        # symbolic links costs a few system calls per file
        path = resolve_inside(self.data_root,
                              osp.join(self._split_folder, name),
                              source=self.label_file, line=lineno)
        pos, neg = load_events(path)
        frames = events_to_frames(pos, neg, a, b, crop=self.crop, path=path)
        results = dict(inputs=torch.from_numpy(frames), label=label,
                       sample_idx=idx, path=path)
        return self.pipeline(results)
