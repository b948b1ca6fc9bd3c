"""Event-camera (DVS) datasets.

Every dataset here lists its samples as *records* (source file, label and an
optional time window), reads events with :func:`bidl_train.datasets.io.
read_events`, turns them into a dense array with ``representation`` (a
TRANSFORMS config such as ``dict(type='EventFrames', num_steps=16, size=32)``),
caches that array on disk, then runs ``pipeline`` (augmentations) on
``{'inputs': array, 'label': int}``. ``__getitem__`` returns
``{'inputs': float32 Tensor [T, 2, H, W], 'label': int}``, T being the
representation's ``num_steps`` (``metainfo['num_steps']``; None when the
representation sets no fixed count, e.g. ``EventFrames(num_steps=None,
duration=...)``).

With ``representation=None`` the cache holds the sliced events instead and
``pipeline`` receives ``{'events', 'sensor_size', 'label'}``; it must then
contain a representation transform (so event-level augmentations can run
before integration).
"""
import csv
import logging
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
from .pipeline import transforms_num_steps
from .steps import config_arguments, wrapped_num_steps
from .io import EVENT_EXTENSIONS, read_events, read_sensor_size
from .paths import open_annotation, resolve_inside, scan_inside
from .seeding import TransformRNG

CACHE_VERSION = 2  # 2: source fingerprints hold ctime and inode


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


def _cache_key(representation):
    """The representation as the cache key records it: a config dict with
    ``T`` spelt ``num_steps`` (one cache whichever name the config uses), or
    the repr of a callable."""
    if callable(representation):
        return repr(representation)
    if isinstance(representation, dict) and 'T' in representation \
            and 'num_steps' not in representation:
        representation = dict(representation)
        representation['num_steps'] = representation.pop('T')
    return representation


def event_num_steps(representation, transforms):
    """T of the samples that ``representation`` then ``transforms`` make:
    the last ``num_steps`` stated (None: no fixed count)."""
    return transforms_num_steps(transforms,
                                getattr(representation, 'num_steps', None))


def _fingerprint(path):
    """What identifies a source file's content for the sample cache.

    Size and mtime alone miss a file rewritten in place with both restored
    (``os.utime`` sets mtime back). The inode change time cannot be set
    back by any user call: every write, truncation or replacement moves it
    (so do chmod, chown and copying, which only cost a rebuild). Hashing
    the content instead would read every recording at every start (38 ms
    for a 10 MB AEDAT file, minutes for CIFAR10-DVS); even hashing the
    first and last 64 KiB costs 0.5 ms a file, 35 s for N-MNIST's 70k
    files, against 8 us for this ``stat``.
    """
    st = os.stat(path)
    return [os.path.basename(path), st.st_size, st.st_mtime_ns,
            st.st_ctime_ns, st.st_ino]


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
            type='EventFrames', split_by='number'), pipeline=(),
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
                    sensor_size=tuple(self.sensor_size),
                    num_steps=self.num_steps)

    @property
    def num_steps(self):
        """T of the samples: the representation's ``num_steps`` (with
        ``representation=None``, that of the pipeline's representation)."""
        return event_num_steps(self.representation, self.pipeline.transforms)

    @classmethod
    def stated_num_steps(cls, cfg):
        """T that a config of this dataset states (see
        :mod:`~bidl_train.datasets.steps`): its representation's and
        pipeline's, built from the config (cheap: no events are read)."""
        args = config_arguments(cls, cfg)
        return event_num_steps(
            _build_transform(args.get('representation')),
            [_build_transform(t) for t in args.get('pipeline') or ()])

    def __len__(self):
        return len(self.records)

    def get_label(self, index):
        return self.records[index]['label']

    def as_tonic(self, transform=None, target_transform=None):
        """This dataset as Tonic code expects one: ``view[i]`` is
        ``(events, label)`` with the source events in Tonic's structured
        dtype, plus ``sensor_size`` (W, H, 2) and ``classes``. See
        :class:`~bidl_train.datasets.transforms.tonic.TonicView`."""
        from .transforms.tonic import TonicView
        return TonicView(self, transform, target_transform)

    # -- loading ------------------------------------------------------------
    def _cache_params(self):
        files = sorted({r['path'] for r in self.records})
        return dict(
            version=CACHE_VERSION,
            dataset=type(self).__name__,
            split=self.split,
            sensor_size=list(self.sensor_size),
            representation=_cache_key(self.representation_cfg),
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
        if self._cache.rebuild_reason:
            print_log(f'{name} ({self.split}): rebuilding the sample cache: '
                      f'{self._cache.rebuild_reason}', logger='current',
                      level=logging.WARNING)
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
            type='EventFrames', split_by='number', size=32),
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
        with open_annotation(trials) as f:
            names = [(lineno, line.strip()) for lineno, line in
                     enumerate(f, start=1) if line.strip()]
        records = []
        for lineno, name in names:
            # the trial list comes with the download: its names may not
            # lead out of the data root (nor may links inside it)
            path = resolve_inside(root, name, source=trials, line=lineno)
            if not os.path.isfile(path):
                raise DataError(f'recording listed in {trials} is missing; '
                                'the download is incomplete', path=path)
            labels = resolve_inside(
                root, os.path.splitext(name)[0] + '_labels.csv',
                source=trials, line=lineno)
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
        with open_annotation(path) as f:
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


def _scan_class_folders(root, classes, extensions, name, help_text,
                        data_root=None):
    """Records of ``root/<class>/<file>`` for each class, sorted by name.

    Symbolic links leading out of ``data_root`` (default ``root``) are
    refused (see :mod:`.paths`)."""
    if not os.path.isdir(root):
        raise DataError(f'{name} not found. {help_text}', path=root)
    records = []
    for label, cls in enumerate(classes):
        folder = os.path.join(root, cls)
        if not os.path.isdir(folder):
            raise DataError(f'{name}: class folder "{cls}" missing. '
                            f'{help_text}', path=folder)
        records += [dict(path=path, label=label) for f, path in
                    scan_inside(data_root or root, folder)
                    if f.lower().endswith(tuple(extensions))]
    return records


@DATASETS.register_module()
class EventFolder(EventDataset):
    """Generic event dataset: ``<data_root>/<split>/<class>/<file>``.

    Any format :func:`read_events` detects; one class per folder (sorted
    folder names unless ``classes`` is given).

    Args:
        sensor_size: (H, W) of the recordings. None (default): the size the
            first file's header records (Prophesee ``.dat``/``.raw``), else
            128x128 (DVS128), said in the log either way.
        classes: class folder names in label order (default: sorted).
        extensions: file endings to read (default: every format
            :func:`read_events` reads, :data:`EVENT_EXTENSIONS`).
        Others: see :class:`EventDataset`.
    """

    #: the size assumed when neither the config nor a file header gives one
    DEFAULT_SENSOR_SIZE = (128, 128)

    def __init__(self, data_root, split='train', sensor_size=None,
                 classes=None, extensions=EVENT_EXTENSIONS,
                 representation=dict(type='EventFrames'), pipeline=(),
                 cache=True, cache_dir=None):
        self.sensor_size = None if sensor_size is None else tuple(sensor_size)
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
            'Expected <data_root>/<split>/<class>/<files>.', self.data_root)
        print_log(f'EventFolder ({self.split}): {len(records)} files in '
                  f'{len(self.classes)} classes under {root}',
                  logger='current')
        if self.sensor_size is None:
            self.sensor_size = self._header_sensor_size(records)
        return records

    def _header_sensor_size(self, records):
        """The first file's recorded sensor size, else the DVS128 default."""
        path = records[0]['path'] if records else None
        size = read_sensor_size(path) if path else None
        if size is None:
            size = self.DEFAULT_SENSOR_SIZE
            source = ('assumed (the files record none); set sensor_size=(H, '
                      'W) if your camera differs')
        else:
            source = f'from the header of {path}'
        print_log(f'EventFolder ({self.split}): sensor {size[0]}x{size[1]} '
                  f'(H x W) {source}', logger='current')
        return tuple(size)


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
                                      self.HELP, self.data_root)
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


def _read_split_rules(path, fields):
    """Rows of a shipped split file: ``{name: [int, ...]}`` (``fields`` ints
    after the name); ``#`` starts a comment line."""
    rules = {}
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, start=1):
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            parts = line.split()
            try:
                if len(parts) != 1 + fields:
                    raise ValueError(line)
                rules[parts[0]] = [int(v) for v in parts[1:]]
            except ValueError as err:
                raise DataError(f'line {lineno}: expected "<name>" and '
                                f'{fields} integer(s), got {line!r}',
                                path=path) from err
    return rules


def _number(filename):
    """Recording number at the end of a file stem (``image_0042.bin`` -> 42,
    ``mnist_3_scale16_0007.aedat`` -> 7), or None."""
    stem = os.path.splitext(filename)[0]
    digits = stem[len(stem.rstrip('0123456789')):]
    return int(digits) if digits else None


NCALTECH101_CLASSES = (
    'BACKGROUND_Google', 'Faces_easy', 'Leopards', 'Motorbikes', 'accordion',
    'airplanes', 'anchor', 'ant', 'barrel', 'bass', 'beaver', 'binocular',
    'bonsai', 'brain', 'brontosaurus', 'buddha', 'butterfly', 'camera',
    'cannon', 'car_side', 'ceiling_fan', 'cellphone', 'chair', 'chandelier',
    'cougar_body', 'cougar_face', 'crab', 'crayfish', 'crocodile',
    'crocodile_head', 'cup', 'dalmatian', 'dollar_bill', 'dolphin',
    'dragonfly', 'electric_guitar', 'elephant', 'emu', 'euphonium', 'ewer',
    'ferry', 'flamingo', 'flamingo_head', 'garfield', 'gerenuk', 'gramophone',
    'grand_piano', 'hawksbill', 'headphone', 'hedgehog', 'helicopter', 'ibis',
    'inline_skate', 'joshua_tree', 'kangaroo', 'ketch', 'lamp', 'laptop',
    'llama', 'lobster', 'lotus', 'mandolin', 'mayfly', 'menorah', 'metronome',
    'minaret', 'nautilus', 'octopus', 'okapi', 'pagoda', 'panda', 'pigeon',
    'pizza', 'platypus', 'pyramid', 'revolver', 'rhino', 'rooster',
    'saxophone', 'schooner', 'scissors', 'scorpion', 'sea_horse', 'snoopy',
    'soccer_ball', 'stapler', 'starfish', 'stegosaurus', 'stop_sign',
    'strawberry', 'sunflower', 'tick', 'trilobite', 'umbrella', 'watch',
    'water_lilly', 'wheelchair', 'wild_cat', 'windsor_chair', 'wrench',
    'yin_yang')


@DATASETS.register_module()
class NCaltech101(EventDataset):
    """N-Caltech101 (Orchard et al. 2015): ``<root>/<class>/image_<nnnn>.bin``
    (the N-MNIST ``.bin`` layout), 101 class folders (100 Caltech101 objects
    + ``BACKGROUND_Google``; Caltech101's ``Faces`` is not converted),
    8709 recordings, coordinates within 240 x 180 (sensor_size (H, W) =
    (180, 240)).

    There is no official split. The shipped file
    ``bidl_train/splits/ncaltech101_split.txt`` fixes one per class: images
    ``1 .. n_train`` (``n_train = ceil(0.8 n)``, n the class's image count)
    are training data, later images test data. Labels follow the sorted
    (ASCII) class folder names, as SpikingJelly numbers them.

    Args:
        data_root: the folder holding the 101 class folders, or the folder
            holding ``Caltech101/`` (the unzipped archive).
        Others: see :class:`EventDataset`.
    """

    classes = NCALTECH101_CLASSES
    sensor_size = (180, 240)
    HELP = ('N-Caltech101 comes from the authors\' page (Garrick Orchard, '
            'N-Caltech101); unzip Caltech101.zip so that <data_root>/'
            'Caltech101/<class>/image_0001.bin ... (or <data_root>/<class>/'
            '...) exist for the 101 class folders. See '
            'datasets/NCaltech101/README.md.')
    SPLIT_FILE = os.path.join(SPLITS_DIR, 'ncaltech101_split.txt')

    def _root(self):
        nested = os.path.join(self.data_root, 'Caltech101')
        return nested if os.path.isdir(nested) else self.data_root

    def _scan(self):
        root = self._root()
        found = _scan_class_folders(root, self.classes, ('.bin', ),
                                    'NCaltech101', self.HELP, self.data_root)
        rules = _read_split_rules(self.SPLIT_FILE, 2)
        records, counts = [], {}
        for rec in found:
            cls = self.classes[rec['label']]
            if cls not in rules:
                raise DataError(f'class {cls!r} has no row in the split file',
                                path=self.SPLIT_FILE)
            num = _number(os.path.basename(rec['path']))
            if num is None:
                raise DataError('expected image_<number>.bin file names',
                                path=rec['path'])
            counts[cls] = counts.get(cls, 0) + 1
            if (num > rules[cls][0]) == (self.split == 'test'):
                records.append(rec)
        odd = [f'{c} ({counts.get(c, 0)} files, {rules[c][1]} expected)'
               for c in self.classes if counts.get(c, 0) != rules[c][1]]
        if odd:
            print_log(f'NCaltech101: {len(odd)} class folders differ from the '
                      f'published counts (first: {odd[0]}); the split rule '
                      'still holds, the split sizes shift', logger='current',
                      level='WARNING')
        print_log(f'NCaltech101 ({self.split}): {len(records)} samples under '
                  f'{root}', logger='current')
        return records


@DATASETS.register_module()
class DVSMNIST(EventDataset):
    """MNIST-DVS (Serrano-Gotarredona & Linares-Barranco 2015), laid out and
    oriented as BIDL reads it.

    Layout (the ten published archives ``grabbed_data<d>.zip`` unzipped)::

        <root>/grabbed_data<d>/scale<s>/mnist_<d>_scale<ss>_<nnnn>.aedat

    ``d`` = digit 0..9 (the label), ``s`` in 4, 8, 16 (the digit's display
    scale), AEDAT 2.0 from a 128x128 DVS. BIDL uses ``scale16``. BIDL's
    own copy keeps the archives under ``<root>/extract/``; that is found
    too.

    Orientation as BIDL (after SpikingJelly): ``x' = 127 - y_raw``,
    ``y' = 127 - x_raw``, ``p' = 1 - p_raw`` of the raw address; in jAER's
    orientation (what :func:`read_aedat2` returns) ``x' = 127 - y``,
    ``y' = x``, ``p' = p``.

    Split: BIDL draws a random 0.8 per-class split; here it is fixed by the
    shipped ``bidl_train/splits/dvs_mnist_split.txt``: recordings numbered
    ``<= last_train`` (800) of each digit are training data, later ones
    test data, at every scale.

    Args:
        scale: 4, 8, 16 or a sequence of them (all recordings of those
            scales).
        Others: see :class:`EventDataset`.
    """

    classes = tuple(str(d) for d in range(10))
    sensor_size = (128, 128)
    SCALES = (4, 8, 16)
    HELP = ('MNIST-DVS is published by the Instituto de Microelectronica de '
            'Sevilla (IMSE-CNM, "MNIST-DVS"): download grabbed_data0.zip ... '
            'grabbed_data9.zip and unzip them so that <data_root>/'
            'grabbed_data<d>/scale16/*.aedat exist (scale4/scale8 likewise). '
            'See datasets/DVSMNIST/README.md.')
    SPLIT_FILE = os.path.join(SPLITS_DIR, 'dvs_mnist_split.txt')

    def __init__(self, data_root, split='train', scale=16,
                 representation=dict(type='EventFrames', num_steps=20,
                                     split_by='number', size=40),
                 pipeline=(), cache=True, cache_dir=None):
        scales = (scale, ) if isinstance(scale, int) else tuple(scale)
        bad = [s for s in scales if s not in self.SCALES]
        if bad or not scales:
            raise DataError(f'DVSMNIST: scale must be among {self.SCALES}, '
                            f'got {scale!r}')
        self.scales = scales
        super().__init__(data_root, split, representation, pipeline, cache,
                         cache_dir)

    def _root(self):
        for root in (self.data_root, os.path.join(self.data_root, 'extract')):
            if os.path.isdir(os.path.join(root, 'grabbed_data0')):
                return root
        raise DataError('MNIST-DVS not found (no grabbed_data0 folder). '
                        + self.HELP, path=self.data_root)

    def _scan(self):
        root = self._root()
        rules = _read_split_rules(self.SPLIT_FILE, 1)
        records = []
        for label, digit in enumerate(self.classes):
            last_train = rules[digit][0]
            for s in self.scales:
                folder = os.path.join(root, f'grabbed_data{digit}',
                                      f'scale{s}')
                if not os.path.isdir(folder):
                    raise DataError(f'DVSMNIST: folder of digit {digit} at '
                                    f'scale {s} missing. {self.HELP}',
                                    path=folder)
                for name, path in scan_inside(self.data_root, folder):
                    if not name.lower().endswith('.aedat'):
                        continue
                    num = _number(name)
                    if num is None:
                        raise DataError('expected mnist_<d>_scale<ss>_'
                                        '<number>.aedat file names',
                                        path=path)
                    if (num > last_train) == (self.split == 'test'):
                        records.append(dict(path=path, label=label))
        print_log(f'DVSMNIST ({self.split}, scale {self.scales}): '
                  f'{len(records)} samples under {root}', logger='current')
        return records

    def _cache_params(self):
        return dict(super()._cache_params(), scales=list(self.scales))

    # same DVS128 AEDAT 2.0 files and the same transpose + flip
    _read = CIFAR10DVS._read


@DATASETS.register_module()
class EventMixDataset(Dataset):
    """Mix pairs of event samples (NDA CutMix / EventMix) as a dataset
    wrapper.

    Mixing needs two samples, and a transform sees one; a batch-level
    transform would instead need a custom collate in every config. A wrapper
    keeps it one config entry, draws the partner with its own seeded
    generator and works after any representation and pipeline (and on
    cached samples), so it is a dataset wrapper.

    For sample ``a`` (the index asked for), with probability ``prob``: draw
    a partner ``b`` uniformly, ``lam ~ Beta(alpha, alpha)`` and a box ``M``
    of the ``inputs`` ``[T, C, H, W]`` grid, then::

        inputs = (1 - M) * a + M * b

    ``mode='cutmix'`` (NDA, Li et al. ECCV 2022): ``M`` is a spatial box of
    area ``(1 - lam) H W`` (sides ``sqrt(1 - lam) H`` and ``sqrt(1 - lam)
    W``, rounded), the same in every frame. ``mode='eventmix'`` (Shen et
    al. 2023): ``M`` is a spatio-temporal cuboid of volume ``(1 - lam) T H
    W`` (each side scaled by ``(1 - lam)^(1/3)``). Both boxes lie at a
    uniformly drawn position inside the grid.

    The label weight of ``a`` is ``w = 1 - |M| / (T H W)`` (the actual
    mixed fraction after rounding) with ``weight='volume'``, or the share
    of ``a``'s events in the mix, ``w = sum((1 - M) a) / sum(inputs)``
    (EventMix's count weighting; 1 when the mix is empty), with
    ``weight='events'``. Each returned sample carries ``soft_label``
    (float32 ``[num_classes]``, ``w`` on ``a``'s class and ``1 - w`` on
    ``b``'s), ``mix_weight`` = w, and ``label`` = the class of the sample
    with the larger weight (a hard label for losses that take integers).

    Args:
        dataset: the wrapped dataset (config or object) returning
            ``{'inputs': [T, C, H, W], 'label': int}``.
        num_classes: length of ``soft_label`` (default
            ``len(dataset.metainfo['classes'])``).
        alpha: Beta parameter.
        prob: chance that a sample is mixed.
        mode: ``'cutmix'`` or ``'eventmix'``.
        weight: ``'volume'`` or ``'events'``.
        seed: seed of the wrapper's generator.
    """

    MODES = ('cutmix', 'eventmix')
    WEIGHTS = ('volume', 'events')

    def __init__(self, dataset, num_classes=None, alpha=1.0, prob=0.5,
                 mode='cutmix', weight='volume', seed=None):
        self.dataset = (DATASETS.build(dataset) if isinstance(dataset, dict)
                        else dataset)
        if mode not in self.MODES or weight not in self.WEIGHTS:
            raise DataError(f'EventMixDataset: mode must be one of '
                            f'{self.MODES} and weight one of {self.WEIGHTS}, '
                            f'got {mode!r}, {weight!r}')
        if num_classes is None:
            num_classes = len(self.dataset.metainfo['classes'])
        self.num_classes = int(num_classes)
        self.alpha, self.prob = alpha, prob
        self.mode, self.weight = mode, weight
        self.rng = TransformRNG(seed)

    @property
    def metainfo(self):
        return self.dataset.metainfo

    @classmethod
    def stated_num_steps(cls, cfg):
        return wrapped_num_steps(cfg['dataset'])

    def __len__(self):
        return len(self.dataset)

    def get_label(self, index):
        return self.dataset.get_label(index)

    def _box(self, shape, lam):
        """Slices of the mixed box for ``[T, C, H, W]`` (C is never cut)."""
        T, _, H, W = shape
        if self.mode == 'cutmix':
            side = np.sqrt(1.0 - lam)
            sizes = (T, int(round(H * side)), int(round(W * side)))
        else:
            side = (1.0 - lam) ** (1.0 / 3.0)
            sizes = tuple(int(round(n * side)) for n in (T, H, W))
        starts = [int(self.rng.integers(0, n - s + 1))
                  for n, s in zip((T, H, W), sizes)]
        (t0, y0, x0), (dt, dh, dw) = starts, sizes
        return (slice(t0, t0 + dt), slice(None), slice(y0, y0 + dh),
                slice(x0, x0 + dw))

    def mix(self, a, b):
        """Mix two ``[T, C, H, W]`` tensors; returns ``(inputs, w)``."""
        if a.shape != b.shape:
            raise DataError(f'EventMixDataset: samples differ in shape '
                            f'({tuple(a.shape)} vs {tuple(b.shape)}); mix '
                            'after a representation of fixed size')
        lam = float(self.rng.beta(self.alpha, self.alpha))
        box = self._box(tuple(a.shape), lam)
        mask = torch.zeros_like(a, dtype=torch.bool)
        mask[box] = True
        out = torch.where(mask, b, a)
        if self.weight == 'volume':
            w = 1.0 - mask[:, 0].sum().item() / mask[:, 0].numel()
        else:
            total = out.sum().item()
            w = a.masked_fill(mask, 0).sum().item() / total if total else 1.0
        return out, w

    def __getitem__(self, index):
        sample = dict(self.dataset[index])
        label_a = int(sample['label'])
        soft = torch.zeros(self.num_classes, dtype=torch.float32)
        w, label_b = 1.0, label_a
        if self.rng.random() < self.prob and len(self.dataset) > 1:
            other = self.dataset[int(self.rng.integers(len(self.dataset)))]
            label_b = int(other['label'])
            sample['inputs'], w = self.mix(sample['inputs'], other['inputs'])
        soft[label_a] += w
        soft[label_b] += 1.0 - w
        sample.update(soft_label=soft, mix_weight=float(w),
                      label=label_a if w >= 0.5 else label_b)
        return sample
