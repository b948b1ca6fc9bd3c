"""Video datasets: RGB clips ``[T, 3, H, W]`` or frame differences.

Sample contract
---------------
``{'inputs': FloatTensor[T, C, H, W], 'label': int, ...}``:

* ``representation='rgb'``: C = 3 (RGB). uint8 frames become float32 in
  ``[0, 1]`` (``/255``) unless the pipeline already made them float
  (``NormalizeVideo``), in which case the values are kept.
* ``representation='diff'`` ("RGB to events"): ``T + 1`` frames are sampled
  and C = 2, channel 0 = OFF, channel 1 = ON (the event convention):
  with grey ``g_t = 0.299 R + 0.587 G + 0.114 B`` (after the pipeline, on
  the 0..255 scale for uint8 clips) and ``d_t = g_{t+1} - g_t``,
  ``ON_t = max(d_t, 0)``, ``OFF_t = max(-d_t, 0)``; with ``diff_threshold``
  ``th`` they become events ``ON_t = [d_t > th]``, ``OFF_t = [d_t < -th]``.

Clip sampling (BIDL's ``LoadFramesInFolder``, re-derived)
---------------------------------------------------------
A video of L frames shorter than n = T (or T + 1) is first looped
(frame list ``0..L-1, 0, 1, ...``) to n. The stride ``dt`` is

* a number: fixed; trimmed to ``L / n`` so the clip fits;
* ``(lo, hi)``: ``U(lo, hi)``;
* ``(lo, hi, sigma)``: BIDL's bell-shaped stride, ``N((lo + hi)/2, sigma)``
  with draws outside ``[lo, hi]`` replaced by the mean;

for random strides ``hi`` is first trimmed to ``max(1 + 1e-5, L / n)``.
Offsets ``o_k = round(k * dt)``, ``k < n``; span ``o_{n-1} + 1``; start
uniform in ``[0, L - span]`` when random, else centred
``(L - span) // 2``. Training splits sample randomly, test splits take the
fixed centred clip (``test_mode``).

Frames are decoded to RGB ``uint8 [n, H, W, 3]`` and put in
``results['inputs']`` for the pipeline (``transforms/video.py``).

Layouts
-------
* Jester (20BN): ``<root>/20bn-jester-v1/<id>/00001.jpg ...``,
  ``<root>/jester-v1-labels.csv`` (27 names, one per line),
  ``<root>/jester-v1-train.csv`` and ``jester-v1-validation.csv`` with
  ``id;label`` rows. Class indices follow BIDL: label names sorted
  case-insensitively (``class_order='sorted'``), or file order
  (``class_order='file'``).
* VideoFolder: ``<root>/<class>/<video>.{mp4,avi,...}`` (OpenCV) or
  ``<root>/<class>/<clip folder>/<frames>.{jpg,png}`` (sorted by name).
* RGBGesture (BIDL's frame-difference DVS-Gesture-like set):
  ``<root>/{train,val}.pkl``, a pickle of ``[data, label]`` with
  ``data uint8 [N, T, C, H, W]`` (T = 60, C = 2) and ``label [N]``; also
  accepted: ``.npz`` with arrays ``data`` and ``label``. The pickle is read
  with an unpickler that only accepts NumPy arrays.
"""
import csv
import io
import os
import os.path as osp
import pickle

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

# Imported for its side effect: registers the video transforms, so that a
# pipeline of config dicts resolves them even before the registry's
# ``locations`` list this module.
import bidl_train.datasets.transforms.video  # noqa: F401
from bidl_train.errors import DataError
from bidl_train.registry import DATASETS, TRANSFORMS
from bidl_train.utils.time_steps import (DEFAULT_NUM_STEPS, UNSET,
                                         resolve_num_steps)

from .io.npy import load_checked
from .paths import check_file_inside, check_relative, open_annotation, \
    resolve_inside, scan_inside
from .pipeline import compose as _compose

FRAME_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp')
VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.mpg', '.mpeg')



def bell_rand(lower, upper, sigma, rng=np.random):
    """``N((lower + upper) / 2, sigma)``, out-of-range draws -> the mean."""
    mean = (lower + upper) / 2
    x = rng.normal(mean, sigma)
    return mean if (x < lower or x > upper) else float(x)


def sample_clip_indices(length, n, stride=1.0, random=False, rng=np.random):
    """Indices (into the original ``length`` frames) of an ``n``-frame clip.

    See the module docstring for the rule. ``rng`` is a
    ``numpy.random.RandomState``-like object (default: the global one).
    """
    if length < 1:
        raise ValueError('a video needs at least one frame')
    frames = [i % length for i in range(max(length, n))]  # loop short videos
    L = len(frames)
    dt_max = L / n
    if isinstance(stride, (int, float)):
        dt = min(float(stride), dt_max)
    else:
        stride = list(stride)
        if len(stride) not in (2, 3) or stride[0] >= stride[1]:
            raise ValueError('stride must be a number, (lo, hi) or '
                             f'(lo, hi, sigma) with lo < hi, got {stride}')
        if random:
            if stride[1] > dt_max:
                stride[1] = max(1 + 1e-5, dt_max)
            if len(stride) == 2:
                dt = rng.uniform(stride[0], stride[1])
            else:
                dt = bell_rand(stride[0], stride[1], stride[2], rng)
        else:
            dt = min((stride[0] + stride[1]) / 2, dt_max)
    offsets = np.round(np.arange(n) * dt).astype(np.int64)
    span = int(offsets[-1]) + 1
    if random:
        start = int(rng.randint(0, L - span + 1))
    else:
        start = (L - span) // 2
    return [frames[start + o] for o in offsets]


def frame_difference(clip, threshold=None):
    """``[T+1, H, W, 3]`` -> ``float32 [T, 2, H, W]`` (OFF, ON); see above."""
    x = np.asarray(clip, np.float32)
    grey = x @ np.array([0.299, 0.587, 0.114], np.float32) if \
        x.shape[-1] == 3 else x.mean(-1)
    d = grey[1:] - grey[:-1]
    if threshold is None:
        on, off = np.maximum(d, 0), np.maximum(-d, 0)
    else:
        on = (d > threshold).astype(np.float32)
        off = (d < -threshold).astype(np.float32)
    return np.stack([off, on], axis=1)


def read_frame(path):
    """One image file -> RGB uint8 ``[H, W, 3]``."""
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise DataError('unreadable image (missing, empty or corrupt)',
                        path=path)
    return img[..., ::-1]


def read_video(path):
    """Decode every frame of a video file -> RGB uint8 ``[L, H, W, 3]``."""
    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            raise DataError('OpenCV cannot open this video (missing, corrupt '
                            'or an unsupported codec)', path=path)
        frames = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame[..., ::-1])
    finally:
        cap.release()
    if not frames:
        raise DataError('video has no decodable frames', path=path)
    return np.stack(frames)


def list_frames(folder):
    """Sorted image file names of a frame folder (error when none)."""
    if not osp.isdir(folder):
        raise DataError('frame folder not found', path=folder)
    names = sorted(n for n in os.listdir(folder)
                   if n.lower().endswith(FRAME_EXTENSIONS))
    if not names:
        raise DataError('no image frames in this folder', path=folder)
    return names


class _ClipDataset(Dataset):
    """Clip sampling, pipeline and output layout shared by video sets.

    Subclasses set ``self._items`` = [(source, label)] and ``self._root``
    (the data root no frame may lead out of through a symbolic link), and
    may override ``_source(idx)`` (checks of a listed source) /
    ``_read(source, indices)``. ``source`` is a frame folder or a video
    file.
    """

    _root = None

    def __init__(self, classes, num_steps, T, stride, test_mode, pipeline,
                 representation, diff_threshold, frame_dropout):
        if representation not in ('rgb', 'diff'):
            raise DataError(
                f"representation must be 'rgb' or 'diff', got "
                f'{representation!r}')
        self._classes = list(classes)
        self.num_steps = self._num_steps(num_steps, T)
        self.stride = stride
        self.test_mode = bool(test_mode)
        self.pipeline = _compose(pipeline)
        self.representation = representation
        self.diff_threshold = diff_threshold
        self.frame_dropout = float(frame_dropout)

    @property
    def metainfo(self):
        return dict(classes=list(self._classes), num_steps=self.num_steps)

    @classmethod
    def _num_steps(cls, num_steps, T):
        return int(resolve_num_steps(cls.__name__, num_steps, T=T,
                                     default=DEFAULT_NUM_STEPS))

    @classmethod
    def stated_num_steps(cls, cfg):
        """``num_steps`` (old name ``T``): frames per clip."""
        return cls._num_steps(cfg.get('num_steps', UNSET),
                              cfg.get('T', UNSET))

    def __len__(self):
        return len(self._items)

    def _read(self, source, n):
        """Sample ``n`` frames of ``source`` -> uint8 ``[n, H, W, 3]``."""
        random = not self.test_mode
        if osp.isdir(source):
            names = list_frames(source)
            idx = sample_clip_indices(len(names), n, self.stride, random)
            frames = [read_frame(self._frame_path(source, names[i]))
                      for i in idx]
            shapes = {f.shape for f in frames}
            if len(shapes) != 1:
                raise DataError(f'frames differ in size: {sorted(shapes)}',
                                path=source)
            return np.stack(frames)
        video = read_video(source)
        idx = sample_clip_indices(len(video), n, self.stride, random)
        return video[idx]

    def _frame_path(self, folder, name):
        """``folder/name``, refused when it is a link out of the root."""
        path = osp.join(folder, name)
        return path if self._root is None else check_file_inside(
            self._root, path, source=folder)

    def _source(self, idx):
        return self._items[idx][0]

    def __getitem__(self, idx):
        idx = range(len(self))[idx]
        source, label = self._source(idx), self._items[idx][1]
        # 'diff' makes T frames from the differences of T + 1
        n = self.num_steps + 1 if self.representation == 'diff' \
            else self.num_steps
        clip = self._read(source, n)
        if self.frame_dropout > 0 and not self.test_mode:
            # BIDL: blank whole frames at random during training
            drop = np.random.rand(len(clip)) < self.frame_dropout
            clip = clip.copy()
            clip[drop] = 0
        results = dict(inputs=clip, label=label, path=source, sample_idx=idx)
        return _to_sample(self.pipeline(results), self.representation,
                          self.diff_threshold)


def _to_sample(results, representation, diff_threshold):
    """Pipeline output ``[T, H, W, C]`` -> tensor ``[T, C, H, W]``."""
    clip = np.asarray(results['inputs'])
    if representation == 'diff':
        out = frame_difference(clip, diff_threshold)
    else:
        out = clip.astype(np.float32)
        if clip.dtype == np.uint8:
            out /= 255.0
        out = out.transpose(0, 3, 1, 2)
    results['inputs'] = torch.from_numpy(np.ascontiguousarray(out))
    results['label'] = int(results['label'])
    return results


def _read_jester_labels(path, class_order):
    try:
        with open_annotation(path) as f:
            names = [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        raise DataError('Jester labels file not found', path=path) from None
    if len(set(names)) != len(names):
        raise DataError('duplicate class names', path=path)
    if class_order == 'sorted':
        names = sorted(names, key=str.lower)
    elif class_order != 'file':
        raise DataError(f"class_order must be 'sorted' or 'file', got "
                        f'{class_order!r}', path=path)
    return names


@DATASETS.register_module()
class Jester(_ClipDataset):
    """20BN-Jester v1 hand gestures (27 classes, JPEG frame folders).

    Args:
        data_root (str): folder with ``20bn-jester-v1/`` and the CSVs.
        split (str): ``'train'`` or ``'val'``.
        num_steps (int): T, frames per clip (BIDL: 16 or 8; default
            :data:`~bidl_train.utils.time_steps.DEFAULT_NUM_STEPS`); ``T``
            is its old name.
        stride: see module doc. Default: bell-shaped ``(1.0, 2.0, 0.1)``
            for training, ``1.5`` for validation (BIDL's settings).
        test_mode (bool | None): fixed centred clips; default
            ``split != 'train'``.
        class_order (str): ``'sorted'`` (BIDL's indices) or ``'file'``.
        frame_dropout (float): training-only probability of blanking a
            frame (BIDL: 0.05).
        representation, diff_threshold, pipeline: see module doc.
    """

    def __init__(self,
                 data_root,
                 split='train',
                 num_steps=UNSET,
                 stride=None,
                 test_mode=None,
                 pipeline=(),
                 representation='rgb',
                 diff_threshold=None,
                 frame_dropout=0.0,
                 class_order='sorted',
                 T=UNSET):
        if split not in ('train', 'val'):
            raise DataError(f"split must be 'train' or 'val', got {split!r}",
                            path=data_root)
        if test_mode is None:
            test_mode = split != 'train'
        if stride is None:
            stride = 1.5 if test_mode else (1.0, 2.0, 0.1)
        classes = _read_jester_labels(
            osp.join(data_root, 'jester-v1-labels.csv'), class_order)
        super().__init__(classes, num_steps, T, stride, test_mode, pipeline,
                         representation, diff_threshold, frame_dropout)
        self.data_root = data_root
        ann = osp.join(data_root, 'jester-v1-train.csv' if split == 'train'
                       else 'jester-v1-validation.csv')
        frames_root = osp.join(data_root, '20bn-jester-v1')
        if not osp.isdir(frames_root):
            raise DataError(
                'no 20bn-jester-v1 frame folder; see datasets/Jester/'
                'README.md for where to get and how to lay out Jester',
                path=frames_root)
        index = {name: i for i, name in enumerate(classes)}
        items, lines = [], []
        try:
            with open_annotation(ann) as f:
                for line_no, row in enumerate(csv.reader(f, delimiter=';'),
                                              1):
                    if not row or not ''.join(row).strip():
                        continue
                    if len(row) != 2 or row[1] not in index:
                        raise DataError(
                            f'line {line_no}: expected "id;label" with a '
                            f'label from jester-v1-labels.csv, got {row}',
                            path=ann)
                    clip = row[0].strip()
                    check_relative(clip, source=ann, line=line_no)
                    items.append((osp.join(frames_root, clip),
                                  index[row[1]]))
                    lines.append((line_no, clip))
        except FileNotFoundError:
            raise DataError('Jester split file not found', path=ann) from None
        if not items:
            raise DataError('no clips listed', path=ann)
        self._items = items
        self._lines, self._ann = lines, ann
        self._root = self._frames_root = frames_root

    def _source(self, idx):
        # links are resolved per clip read, not for all 148k rows up front
        line_no, clip = self._lines[idx]
        return resolve_inside(self._frames_root, clip, source=self._ann,
                              line=line_no)


@DATASETS.register_module()
class VideoFolder(_ClipDataset):
    """One class per sub-folder of video files or of frame folders.

    Args:
        data_root (str): ``<data_root>/<class>/<video file or frame dir>``.
        classes (list[str] | None): default sorted sub-folder names.
        num_steps (old name T), stride, test_mode, pipeline,
        representation, diff_threshold, frame_dropout: as :class:`Jester`
            (default stride 1, test_mode False).
    """

    def __init__(self,
                 data_root,
                 classes=None,
                 num_steps=UNSET,
                 stride=1.0,
                 test_mode=False,
                 pipeline=(),
                 representation='rgb',
                 diff_threshold=None,
                 frame_dropout=0.0,
                 T=UNSET):
        if not osp.isdir(data_root):
            raise DataError('video folder not found', path=data_root)
        found = sorted(d for d in os.listdir(data_root)
                       if osp.isdir(osp.join(data_root, d))
                       and not d.startswith('.'))
        classes = found if classes is None else list(classes)
        for d in found:
            if d not in classes:
                raise DataError(f'sub-folder {d!r} is not one of the classes '
                                f'{classes}', path=osp.join(data_root, d))
        super().__init__(classes, num_steps, T, stride, test_mode, pipeline,
                         representation, diff_threshold, frame_dropout)
        items = []
        for label, cls in enumerate(classes):
            folder = osp.join(data_root, cls)
            if not osp.isdir(folder):
                continue
            for name, path in scan_inside(data_root, folder):
                if not (osp.isdir(path)
                        or name.lower().endswith(VIDEO_EXTENSIONS)):
                    raise DataError(
                        f'neither a frame folder nor a video '
                        f'({", ".join(VIDEO_EXTENSIONS)})', path=path)
                items.append((path, label))
        if not items:
            raise DataError('no videos found', path=data_root)
        self._items = items
        self._root = data_root


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds NumPy arrays and refuses everything else."""

    ALLOWED = {
        ('numpy.core.multiarray', '_reconstruct'),
        ('numpy._core.multiarray', '_reconstruct'),
        ('numpy.core.multiarray', 'scalar'),
        ('numpy._core.multiarray', 'scalar'),
        ('numpy', 'ndarray'),
        ('numpy', 'dtype'),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f'refusing to load {module}.{name}: only NumPy arrays are '
            'allowed in an RGBGesture pickle')


def _load_rgbgesture(path):
    if path.endswith('.npz'):
        with load_checked(path) as z:
            if not {'data', 'label'} <= set(z.files):
                raise DataError(f'.npz needs arrays data and label, has '
                                f'{z.files}', path=path)
            return z['data'], z['label']
    with open(path, 'rb') as f:
        raw = f.read()
    try:
        obj = _NumpyOnlyUnpickler(io.BytesIO(raw)).load()
    except Exception as e:  # any unpickling failure is a data problem
        raise DataError(f'not a [data, label] pickle of arrays ({e})',
                        path=path) from None
    if not isinstance(obj, (list, tuple)) or len(obj) != 2:
        raise DataError('expected a pickled [data, label] pair', path=path)
    return np.asarray(obj[0]), np.asarray(obj[1])


@DATASETS.register_module()
class RGBGesture(Dataset):
    """BIDL's RGB-camera gesture set stored as frame differences.

    Args:
        data_root (str): folder with ``ann_file``.
        ann_file (str): ``'train.pkl'`` or ``'val.pkl'`` (or an ``.npz``).
        shape (tuple | None): ``(w, h)`` to resize every frame to (BIDL:
            ``(40, 40)``), as ``cv2.resize``.
        pipeline (list): clip transforms on ``[T, H, W, C]``.

    Samples: ``float32 [T, C, H, W]`` with the stored values (BIDL feeds the
    0..255 difference magnitudes unscaled).
    """

    CLASSES = ('Hand Clapping', 'Left Hand Wave', 'Right Hand Wave',
               'Left Arm CW', 'Left Arm CCW', 'Right Arm CW', 'Right Arm CCW',
               'Arm Roll', 'Air Drums', 'Air Guitar', 'Other')

    def __init__(self, data_root, ann_file='train.pkl', shape=None,
                 pipeline=()):
        path = osp.join(data_root, ann_file)
        if not osp.isfile(path):
            raise DataError('RGBGesture file not found; see '
                            'datasets/RGBGesture/README.md', path=path)
        data, label = _load_rgbgesture(path)
        if data.ndim != 5:
            raise DataError(f'data must be [N, T, C, H, W], got {data.shape}',
                            path=path)
        label = label.reshape(len(label), -1)
        if len(label) != len(data) or label.shape[1] != 1:
            raise DataError(f'label must be [N] with N={len(data)}, got '
                            f'{label.shape}', path=path)
        label = label[:, 0].astype(np.int64)
        bad = (label < 0) | (label >= len(self.CLASSES))
        if bad.any():
            raise DataError(
                f'label {int(label[bad][0])} at sample '
                f'{int(np.flatnonzero(bad)[0])} is outside the '
                f'{len(self.CLASSES)} classes', path=path)
        self.path = path
        self._data, self._labels = data, label
        self.shape = tuple(shape) if shape is not None else None
        self.pipeline = _compose(pipeline)

    @property
    def metainfo(self):
        # the stored clips fix T: data is [N, T, C, H, W]
        return dict(classes=list(self.CLASSES),
                    num_steps=int(self._data.shape[1]))

    @classmethod
    def stated_num_steps(cls, cfg):
        return None  # the stored clips decide

    def __len__(self):
        return len(self._labels)

    def __getitem__(self, idx):
        idx = range(len(self))[idx]
        clip = self._data[idx].transpose(0, 2, 3, 1)  # [T, H, W, C]
        if self.shape is not None:
            w, h = self.shape
            clip = np.stack([
                cv2.resize(f, (w, h)).reshape(h, w, clip.shape[-1])
                for f in clip
            ])
        results = self.pipeline(
            dict(inputs=clip, label=int(self._labels[idx]), sample_idx=idx))
        out = np.asarray(results['inputs'], np.float32).transpose(0, 3, 1, 2)
        results['inputs'] = torch.from_numpy(np.ascontiguousarray(out))
        return results


@DATASETS.register_module()
class SyntheticJester(Jester):
    """Jester reader over generated gesture clips (``synthetic/video.py``).

    On first use writes the Jester layout under ``data_root`` with
    :func:`make_synthetic_jester` (logging that it is synthetic), then reads
    it with :class:`Jester` (``class_order='file'``). ``height`` and
    ``width`` set the size of the written frames (real Jester clips are 100
    pixels high; the default is smaller to keep the demo cheap). Extra
    keyword arguments go to :class:`Jester`.
    """

    def __init__(self,
                 data_root,
                 split='train',
                 num_train_per_class=8,
                 num_val_per_class=4,
                 num_frames=12,
                 height=50,
                 width=88,
                 seed=0,
                 **kwargs):
        from bidl_train.datasets.synthetic.ensure import ensure_generated
        from bidl_train.datasets.synthetic.video import make_synthetic_jester
        ensure_generated(
            data_root, 'SyntheticJester',
            dict(num_train_per_class=num_train_per_class,
                 num_val_per_class=num_val_per_class, num_frames=num_frames,
                 height=height, width=width, seed=seed),
            ['20bn-jester-v1', 'jester-v1-labels.csv', 'jester-v1-train.csv',
             'jester-v1-validation.csv'],
            lambda: make_synthetic_jester(data_root, num_train_per_class,
                                          num_val_per_class, num_frames,
                                          height, width, seed))
        kwargs.setdefault('class_order', 'file')
        super().__init__(data_root, split=split, **kwargs)
