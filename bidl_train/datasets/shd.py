"""Spiking Heidelberg Digits (SHD) and Spiking Speech Commands (SSC).

Cramer et al., "The Heidelberg spiking data sets for the systematic
evaluation of spiking neural networks", IEEE TNNLS 2020. Spoken words passed
through a cochlea model give spike trains on 700 channels. One ``.h5`` file
holds a whole split (layout in :mod:`bidl_train.datasets.io.hdf5_spikes`):

=====  ==========================================  =======  =====
set    files in ``data_root``                      classes  sizes
=====  ==========================================  =======  =====
SHD    ``shd_train.h5``, ``shd_test.h5``           20       8156 / 2264
SSC    ``ssc_train.h5``, ``ssc_valid.h5``,          35       75466 / 9981 /
       ``ssc_test.h5``                                      20382
=====  ==========================================  =======  =====

Spikes become events ``x = channel``, ``y = 0``, ``p = 1``, ``t`` in us, on
a ``sensor_size = (1, 700)``, so every event representation applies:
``EventFrames(num_steps=100, split_by='time')`` gives ``[T, 2, 1, 700]``
(channel 0, OFF, stays empty), and :class:`~.transforms.representation.SpikeBins`
gives the common fixed-window bins ``[T, 700]`` or ``[T, 1, 1, 700]``.
"""
import os

from mmengine.logging import print_log

from bidl_train.errors import DataError
from bidl_train.registry import DATASETS

from .dvs import EventDataset, _fingerprint
from .io import read_spike_h5, read_spike_h5_keys
from .paths import check_file_inside

SHD_CLASSES = tuple(
    [f'{d} (English)' for d in ('zero', 'one', 'two', 'three', 'four', 'five',
                                'six', 'seven', 'eight', 'nine')]
    + [f'{d} (German)' for d in ('null', 'eins', 'zwei', 'drei', 'vier',
                                 'fuenf', 'sechs', 'sieben', 'acht', 'neun')])

SSC_CLASSES = (
    'backward', 'bed', 'bird', 'cat', 'dog', 'down', 'eight', 'five',
    'follow', 'forward', 'four', 'go', 'happy', 'house', 'learn', 'left',
    'marvin', 'nine', 'no', 'off', 'on', 'one', 'right', 'seven', 'sheila',
    'six', 'stop', 'three', 'tree', 'two', 'up', 'visual', 'wow', 'yes',
    'zero')


@DATASETS.register_module()
class SHD(EventDataset):
    """Spiking Heidelberg Digits from ``shd_{train,test}.h5``.

    Labels 0-9 are the English digits, 10-19 the German ones; class names
    come from the file's ``extra/keys`` when present.

    Each sample's spikes are an event array (see module doc); the
    representation turns them into ``inputs`` and the result is cached like
    every event dataset. With ``cache=False`` the split file is read once
    and kept in this instance.

    Args:
        data_root: folder holding the (gunzipped) ``.h5`` files.
        split: ``'train'`` or ``'test'`` (SSC also ``'valid'``).
        representation: default ``EventFrames(num_steps=100,
            split_by='time')``.
        Others: see :class:`EventDataset`.
    """

    classes = SHD_CLASSES
    sensor_size = (1, 700)
    PREFIX = 'shd'
    HELP = ('SHD/SSC are published by the Zenke lab (Heidelberg spiking data '
            'sets, Cramer et al. 2020): download shd_train.h5.gz and '
            'shd_test.h5.gz (SSC: ssc_train/valid/test.h5.gz), gunzip them '
            'into <data_root>. See datasets/SHD/README.md.')

    def __init__(self, data_root, split='train', representation=dict(
            type='EventFrames', num_steps=100, split_by='time'), pipeline=(),
                 cache=True, cache_dir=None):
        self._samples = None  # events of the split, read on first need
        super().__init__(data_root, split, representation, pipeline, cache,
                         cache_dir)

    @property
    def file(self):
        return os.path.join(self.data_root, f'{self.PREFIX}_{self.split}.h5')

    def _split_events(self):
        if self._samples is None:
            self._samples, _ = read_spike_h5(self.file)
        return self._samples

    def _scan(self):
        path = self.file
        if not os.path.isfile(path):
            hint = (' (found the .gz archive: gunzip it first)'
                    if os.path.isfile(path + '.gz') else '')
            raise DataError(f'{type(self).__name__} {self.split} file '
                            f'missing{hint}. {self.HELP}', path=path)
        check_file_inside(self.data_root, path)  # no link out of the root
        samples, labels = read_spike_h5(path)
        if labels.size and (labels.min() < 0
                            or labels.max() >= len(self.classes)):
            raise DataError(f'labels outside 0..{len(self.classes) - 1} '
                            f'(found {labels.min()}..{labels.max()}); is '
                            'this the right data set?', path=path)
        width = self.sensor_size[1]
        for i, ev in enumerate(samples):
            if len(ev) and int(ev['x'].max()) >= width:
                raise DataError(f'sample {i}: channel {int(ev["x"].max())} '
                                f'outside 0..{width - 1}', path=path)
        self._samples = samples
        keys = read_spike_h5_keys(path)
        if keys is not None:
            if len(keys) != len(self.classes):
                raise DataError(f'extra/keys names {len(keys)} classes, '
                                f'{type(self).__name__} has '
                                f'{len(self.classes)}', path=path)
            self.classes = tuple(keys)  # the file's own names win
        print_log(f'{type(self).__name__} ({self.split}): {len(samples)} '
                  f'samples in {path}', logger='current')
        return [dict(path=path, label=int(lab), index=i)
                for i, lab in enumerate(labels)]

    def _cache_params(self):
        # one file per split: its fingerprint and the labels identify the
        # samples (record basenames would all be equal)
        return dict(
            version=2, dataset=type(self).__name__, split=self.split,
            sensor_size=list(self.sensor_size),
            representation=self.representation_cfg
            if not callable(self.representation_cfg) else
            repr(self.representation_cfg),
            files=[_fingerprint(self.file)],
            labels=[r['label'] for r in self.records])

    def _records_by_file(self):
        samples = self._split_events()
        for i, rec in enumerate(self.records):
            yield i, rec, samples[rec['index']]

    def _build_cache(self):
        super()._build_cache()
        self._samples = None  # cached arrays replace the raw spikes

    def _load(self, index):
        if self._cache is not None:
            return self._cache.load(index)
        events = self._split_events()[self.records[index]['index']]
        return self._prepare(events)


@DATASETS.register_module()
class SSC(SHD):
    """Spiking Speech Commands from ``ssc_{train,valid,test}.h5`` (35
    classes). Class names come from the file's ``extra/keys``; without it
    they default to the 35 Speech Commands words in alphabetical order."""

    classes = SSC_CLASSES
    PREFIX = 'ssc'
    splits = ('train', 'valid', 'test')


__all__ = ['SHD', 'SSC', 'SHD_CLASSES', 'SSC_CLASSES']
