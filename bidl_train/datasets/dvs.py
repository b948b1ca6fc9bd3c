"""Event-camera (DVS) datasets.

Every dataset here lists its samples as *records* (source file, label and an
optional time window), reads events with :func:`bidl_train.datasets.io.
read_events`, turns them into a dense array with ``representation`` (a
TRANSFORMS config such as ``dict(type='EventFrames', T=16, size=32)``),
caches that array on disk, then runs ``pipeline`` (augmentations) on
``{'inputs': array, 'label': int}``. ``__getitem__`` returns
``{'inputs': float32 Tensor [T, 2, H, W], 'label': int}``.

With ``representation=None`` the cache holds the sliced events instead and
``pipeline`` receives ``{'events', 'sensor_size', 'label'}``; it must then
contain a representation transform (so event-level augmentations can run
before integration).
"""
import csv
import os

import numpy as np
import torch
from mmengine.dataset import Compose
from mmengine.logging import print_log
from torch.utils.data import Dataset

from bidl_train.errors import DataError
from bidl_train.registry import DATASETS, TRANSFORMS
from bidl_train.utils.progress import track

from .cache import SampleCache
from .io import read_events

CACHE_VERSION = 1


def _build_transform(cfg):
    """A transform from a config dict (built in our TRANSFORMS registry,
    which falls back to mmengine's), a callable, or None."""
    if cfg is None or callable(cfg):
        return cfg
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise DataError(f'a representation or pipeline entry must be a '
                        f'transform config dict with a "type" key, got '
                        f'{cfg!r}')
    return TRANSFORMS.build(cfg)


def _fingerprint(path):
    st = os.stat(path)
    return [os.path.basename(path), st.st_size, st.st_mtime_ns]


class EventDataset(Dataset):
    """Shared machinery of the event datasets (records -> cache -> samples).

    Subclasses set ``classes`` and ``sensor_size`` and implement
    ``_scan() -> list of dict(path=..., label=int, window=(start, end) or
    None)``; they may override ``_read(path)`` (e.g. to re-orient
    coordinates).

    Args:
        data_root: dataset folder.
        split: ``'train'`` or ``'test'``.
        representation: transform config producing ``inputs`` from
            ``events`` (cached), or None (see module doc).
        pipeline: list of transform configs run on every access.
        cache: keep preprocessed samples on disk (built once, reused).
        cache_dir: where cache entries live; default
            ``<data_root>/.cache``.
    """

    classes = ()
    sensor_size = (128, 128)
    splits = ('train', 'test')

    def __init__(self, data_root, split='train', representation=dict(
            type='EventFrames', T=16, split_by='number'), pipeline=(),
                 cache=True, cache_dir=None):
        self.data_root = os.fspath(data_root)
        if split not in self.splits:
            raise DataError(f'{type(self).__name__}: split must be one of '
                            f'{self.splits}, got {split!r}')
        self.split = split
        self.representation_cfg = representation
        self.representation = _build_transform(representation)
        self.pipeline = Compose([_build_transform(t) for t in pipeline])
        self.records = self._scan()
        self._cache = None
        if cache:
            root = cache_dir or os.path.join(self.data_root, '.cache')
            self._cache = SampleCache(root, self._cache_params())
            self._build_cache()

    # -- subclass interface -------------------------------------------------
    def _scan(self):
        raise TypeError(f'{type(self).__name__} must implement _scan()')

    def _read(self, path):
        return read_events(path)

    # -- metadata -----------------------------------------------------------
    @property
    def metainfo(self):
        return dict(classes=list(self.classes),
                    sensor_size=tuple(self.sensor_size))

    def __len__(self):
        return len(self.records)

    def get_label(self, index):
        return self.records[index]['label']

    # -- loading ------------------------------------------------------------
    def _cache_params(self):
        files = sorted({r['path'] for r in self.records})
        return dict(
            version=CACHE_VERSION,
            dataset=type(self).__name__,
            split=self.split,
            sensor_size=list(self.sensor_size),
            representation=self.representation_cfg
            if not callable(self.representation_cfg) else
            repr(self.representation_cfg),
            files=[_fingerprint(p) for p in files],
            records=[[os.path.basename(r['path']), r['label'],
                      r.get('window')] for r in self.records])

    @staticmethod
    def _slice(events, window):
        if window is None:
            return events
        start, end = window
        t = events['t']
        return events[(t >= start) & (t < end)]

    def _prepare(self, events):
        """Representation output (or the events if there is none)."""
        if self.representation is None:
            return events
        results = self.representation(
            dict(events=events, sensor_size=tuple(self.sensor_size)))
        return np.asarray(results['inputs'], dtype=np.float32)

    def _records_by_file(self):
        """Yield (index, record, events) reading each source file once."""
        loaded_path, loaded = None, None
        for i, rec in enumerate(self.records):
            if rec['path'] != loaded_path:
                loaded_path, loaded = rec['path'], self._read(rec['path'])
            yield i, rec, self._slice(loaded, rec.get('window'))

    def _build_cache(self):
        name = type(self).__name__
        if self._cache.load_index() is not None:
            print_log(f'{name} ({self.split}): using cached samples in '
                      f'{self._cache.dir}', logger='current')
            return
        print_log(f'{name} ({self.split}): preprocessing {len(self)} samples '
                  f'into {self._cache.dir} (done once)', logger='current')
        for i, _, events in track(self._records_by_file(),
                                  f'{name} ({self.split}): caching',
                                  total=len(self)):
            self._cache.save(i, self._prepare(events))
        self._cache.save_index(num_samples=len(self),
                               labels=[r['label'] for r in self.records])

    def _load(self, index):
        if self._cache is not None:
            return self._cache.load(index)
        rec = self.records[index]
        return self._prepare(self._slice(self._read(rec['path']),
                                         rec.get('window')))

    def __getitem__(self, index):
        rec = self.records[index]
        data = self._load(index)
        results = dict(label=rec['label'], sensor_size=tuple(self.sensor_size))
        results['inputs' if self.representation is not None else
                'events'] = data
        results = self.pipeline(results)
        if results is None or 'inputs' not in results:
            raise DataError(
                f'{type(self).__name__}: the pipeline produced no "inputs"; '
                'with representation=None the pipeline must contain a '
                'representation transform such as EventFrames')
        inputs = torch.as_tensor(np.ascontiguousarray(results['inputs']),
                                 dtype=torch.float32)
        return dict(inputs=inputs, label=int(results['label']))


DVS_GESTURE_CLASSES = (
    'hand clap', 'right hand wave', 'left hand wave', 'right arm clockwise',
    'right arm counter-clockwise', 'left arm clockwise',
    'left arm counter-clockwise', 'arm roll', 'air drums', 'air guitar',
    'other gestures')

DVS_GESTURE_HELP = (
    'DVS128 Gesture (IBM, Amir et al. CVPR 2017) is distributed by IBM '
    'Research (research.ibm.com/interactive/dvsgesture); the download needs '
    'a login, so there is no automatic download. Download DvsGesture.tar.gz '
    'and extract it so that the data root holds user01_fluorescent.aedat, '
    'user01_fluorescent_labels.csv, ..., trials_to_train.txt and '
    'trials_to_test.txt (the root may also be the folder containing '
    'DvsGesture/). See datasets/DVS128Gesture/README.md.')


@DATASETS.register_module()
class DVS128Gesture(EventDataset):
    """DVS128 Gesture in IBM's layout (AEDAT 3.1 + ``_labels.csv`` windows).

    Each row ``class,startTime_usec,endTime_usec`` of a recording's labels
    file is one sample: the events with ``start <= t < end``; classes 1..11
    become labels 0..10. The recordings of a split are listed in
    ``trials_to_train.txt`` / ``trials_to_test.txt`` (1176 / 288 samples).

    Args:
        classes: class names (default the 11 gestures); labels must lie in
            ``1..len(classes)``.
        Others: see :class:`EventDataset`.
    """

    classes = DVS_GESTURE_CLASSES

    def __init__(self, data_root, split='train', representation=dict(
            type='EventFrames', T=16, split_by='number', size=32),
                 pipeline=(), cache=True, cache_dir=None, classes=None):
        if classes is not None:
            self.classes = tuple(classes)
        super().__init__(data_root, split, representation, pipeline, cache,
                         cache_dir)

    def _root(self):
        for root in (self.data_root, os.path.join(self.data_root,
                                                  'DvsGesture')):
            if os.path.isfile(os.path.join(root, 'trials_to_train.txt')):
                return root
        raise DataError(f'DVS128 Gesture not found (no trials_to_train.txt). '
                        + DVS_GESTURE_HELP, path=self.data_root)

    def _scan(self):
        root = self._root()
        trials = os.path.join(root, f'trials_to_{self.split}.txt')
        if not os.path.isfile(trials):
            raise DataError(f'split list missing. {DVS_GESTURE_HELP}',
                            path=trials)
        with open(trials, encoding='utf-8') as f:
            names = [line.strip() for line in f if line.strip()]
        records = []
        for name in names:
            path = os.path.join(root, name)
            if not os.path.isfile(path):
                raise DataError(f'recording listed in {trials} is missing; '
                                'the download is incomplete', path=path)
            labels = os.path.splitext(path)[0] + '_labels.csv'
            for label, start, end in self._read_labels(labels):
                records.append(dict(path=path, label=label,
                                    window=(start, end)))
        print_log(f'DVS128Gesture ({self.split}): {len(records)} samples in '
                  f'{len(names)} recordings under {root}', logger='current')
        return records

    def _read_labels(self, path):
        """``[(label 0-based, start_us, end_us), ...]`` of a labels CSV."""
        if not os.path.isfile(path):
            raise DataError('labels file of a recording is missing; the '
                            'download is incomplete', path=path)
        rows = []
        with open(path, newline='', encoding='utf-8') as f:
            for lineno, row in enumerate(csv.reader(f), start=1):
                if not row or (lineno == 1 and not row[0].strip().isdigit()):
                    continue  # blank line or the column-name header
                try:
                    cls, start, end = (int(v) for v in row)
                except ValueError as err:
                    raise DataError(
                        f'line {lineno}: expected "class,startTime_usec,'
                        f'endTime_usec" integers, got {row!r}',
                        path=path) from err
                if not 1 <= cls <= len(self.classes):
                    raise DataError(f'line {lineno}: class {cls} outside '
                                    f'1..{len(self.classes)}', path=path)
                if end <= start:
                    raise DataError(f'line {lineno}: window end {end} <= '
                                    f'start {start}', path=path)
                rows.append((cls - 1, start, end))
        return rows


def _scan_class_folders(root, classes, extensions, name, help_text):
    """Records of ``root/<class>/<file>`` for each class, sorted by name."""
    if not os.path.isdir(root):
        raise DataError(f'{name} not found. {help_text}', path=root)
    records = []
    for label, cls in enumerate(classes):
        folder = os.path.join(root, cls)
        if not os.path.isdir(folder):
            raise DataError(f'{name}: class folder "{cls}" missing. '
                            f'{help_text}', path=folder)
        files = sorted(f for f in os.listdir(folder)
                       if f.lower().endswith(tuple(extensions)))
        records += [dict(path=os.path.join(folder, f), label=label)
                    for f in files]
    return records


@DATASETS.register_module()
class EventFolder(EventDataset):
    """Generic event dataset: ``<data_root>/<split>/<class>/<file>``.

    Any format :func:`read_events` detects; one class per folder (sorted
    folder names unless ``classes`` is given).

    Args:
        sensor_size: (H, W) of the recordings.
        classes: class folder names in label order (default: sorted).
        extensions: file endings to read.
        Others: see :class:`EventDataset`.
    """

    def __init__(self, data_root, split='train', sensor_size=(128, 128),
                 classes=None, extensions=('.aedat', '.aedat4', '.bin',
                                           '.npy', '.npz'),
                 representation=dict(type='EventFrames', T=16), pipeline=(),
                 cache=True, cache_dir=None):
        self.sensor_size = tuple(sensor_size)
        self.extensions = tuple(extensions)
        root = os.path.join(os.fspath(data_root), split)
        if classes is None:
            if not os.path.isdir(root):
                raise DataError('EventFolder: split folder missing; expected '
                                '<data_root>/<split>/<class>/<files>',
                                path=root)
            classes = sorted(d for d in os.listdir(root)
                             if os.path.isdir(os.path.join(root, d))
                             and not d.startswith('.'))
        self.classes = tuple(classes)
        self.splits = (split, )
        super().__init__(data_root, split, representation, pipeline, cache,
                         cache_dir)

    def _scan(self):
        root = os.path.join(self.data_root, self.split)
        records = _scan_class_folders(
            root, self.classes, self.extensions, 'EventFolder',
            'Expected <data_root>/<split>/<class>/<files>.')
        print_log(f'EventFolder ({self.split}): {len(records)} files in '
                  f'{len(self.classes)} classes under {root}',
                  logger='current')
        return records


@DATASETS.register_module()
class NMNIST(EventDataset):
    """N-MNIST (Orchard et al. 2015): ``<root>/{Train,Test}/<digit>/*.bin``,
    34x34, 10 classes, 60000 / 10000 samples."""

    classes = tuple(str(d) for d in range(10))
    sensor_size = (34, 34)
    HELP = ('N-MNIST comes from the authors\' page (Garrick Orchard, '
            'Neuromorphic MNIST); unzip Train.zip and Test.zip so that '
            '<data_root>/Train/<digit>/*.bin and <data_root>/Test/<digit>/'
            '*.bin exist. See datasets/NMNIST/README.md.')

    def _scan(self):
        root = os.path.join(self.data_root,
                            'Train' if self.split == 'train' else 'Test')
        records = _scan_class_folders(root, self.classes, ('.bin', ), 'NMNIST',
                                      self.HELP)
        print_log(f'NMNIST ({self.split}): {len(records)} samples under '
                  f'{root}', logger='current')
        return records


CIFAR10_CLASSES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog',
                   'frog', 'horse', 'ship', 'truck')
SPLITS_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)),
                          'splits')


@DATASETS.register_module()
class CIFAR10DVS(EventDataset):
    """CIFAR10-DVS (Li et al. 2017): ``<root>/<class>/cifar10_<class>_<i>
    .aedat`` (AEDAT 2.0, DVS128), 10 classes x 1000 recordings.

    There is no official split; the fixed 9:1 per-class split shipped in
    ``bidl_train/splits/cifar10_dvs_test.txt`` (recordings 900-999 of each
    class are test) is used, never a random one. Events are re-oriented as
    SpikingJelly reads them: ``x' = 127 - y``, ``y' = x`` of jAER's
    orientation (a transpose and flip of the raw address).
    """

    classes = CIFAR10_CLASSES
    sensor_size = (128, 128)
    HELP = ('CIFAR10-DVS is on figshare (Li et al. 2017, "CIFAR10-DVS: an '
            'event-stream dataset for object classification"); extract the '
            'ten class archives so that <data_root>/<class>/cifar10_<class>_'
            '<i>.aedat exist. See datasets/CIFAR10DVS/README.md.')
    SPLIT_FILE = os.path.join(SPLITS_DIR, 'cifar10_dvs_test.txt')

    def _scan(self):
        found = _scan_class_folders(self.data_root, self.classes, ('.aedat', ),
                                    'CIFAR10DVS', self.HELP)
        with open(self.SPLIT_FILE, encoding='utf-8') as f:
            test = {line.strip() for line in f if line.strip()}
        rel = {os.path.relpath(r['path'], self.data_root).replace(os.sep, '/')
               for r in found}
        missing = sorted(test - rel)
        if missing:
            raise DataError(f'CIFAR10DVS: {len(missing)} test recordings of '
                            f'the shipped split are missing (first: '
                            f'{missing[0]}); the download is incomplete',
                            path=self.data_root)
        want_test = self.split == 'test'
        records = [r for r in found if (os.path.relpath(
            r['path'], self.data_root).replace(os.sep, '/') in test)
                   == want_test]
        print_log(f'CIFAR10DVS ({self.split}): {len(records)} samples under '
                  f'{self.data_root}', logger='current')
        return records

    def _read(self, path):
        events = read_events(path, format='aedat2', sensor='dvs128')
        x = events['x'].copy()
        events['x'] = 127 - events['y']
        events['y'] = x
        return events
