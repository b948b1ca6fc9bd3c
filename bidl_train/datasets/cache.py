"""On-disk cache of preprocessed samples.

Layout of one cache entry, ``<root>/<key>/``::

    index.json          {"params": <the parameters>, "num_samples": N, ...}
    000000.npy ...      one array per sample (np.save format)

``key`` is a hash of the JSON of the parameters that determine the samples
(dataset, split, representation, a fingerprint of the source files), so
changing any of them selects a different directory: an old entry is never
read for new parameters. ``index.json`` is written last, so an entry without
it is incomplete and is rebuilt.

Event frames are spike counts held in float32: a sample whose values are
all whole numbers in ``0..65535`` is stored as uint8 or uint16 and turned
back into the representation's dtype (``index.json``'s ``dtype``) on load,
exactly, at a quarter or half of the disk space (CIFAR10-DVS's train split
at T = 10, 128x128 is about 12 GB as float32). Every file is written to a temporary name in
the same directory and moved into place with ``os.replace`` (atomic on POSIX
and Windows), so two processes building the same entry at once both succeed
and readers never see a half-written file.
"""
import hashlib
import json
import os
import tempfile

import numpy as np

from bidl_train.errors import DataError

INDEX = 'index.json'


def cache_key(params):
    """16 hex digits of the SHA-1 of the canonical JSON of ``params``."""
    text = json.dumps(params, sort_keys=True, default=repr)
    return hashlib.sha1(text.encode('utf-8')).hexdigest()[:16]


def _canonical(params):
    """``params`` as they read back from JSON (tuples become lists, ...)."""
    return json.loads(json.dumps(params, sort_keys=True, default=repr))


class SampleCache:
    """One cache entry: ``root/<cache_key(params)>/``.

    Args:
        root: directory holding cache entries (created on first write).
        params: JSON-able dict of everything the samples depend on.
    """

    def __init__(self, root, params):
        self.params = _canonical(params)
        self.key = cache_key(self.params)
        self.dir = os.path.join(os.fspath(root), self.key)
        #: the dtype samples are restored to (numpy's dtype string); set by
        #: the first save, or read from a complete entry's index
        self.dtype = None

    def _path(self, index):
        return os.path.join(self.dir, f'{index:06d}.npy')

    def load_index(self):
        """The index dict if this entry is complete and matches, else None."""
        path = os.path.join(self.dir, INDEX)
        try:
            with open(path, encoding='utf-8') as f:
                index = json.load(f)
        except (OSError, ValueError):
            return None
        if index.get('params') != self.params:
            return None
        self.dtype = index.get('dtype')  # absent: stored as produced
        return index

    def _atomic_write(self, final, write):
        try:
            os.makedirs(self.dir, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.dir, suffix='.tmp')
        except OSError as err:
            raise DataError(
                f'cannot write the sample cache ({err}); make the folder '
                'writable or pass cache_dir= to a writable place, or '
                'cache=False', path=self.dir) from err
        try:
            with os.fdopen(fd, 'wb') as f:
                write(f)
            os.replace(tmp, final)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise

    def save(self, index, array):
        """Store sample ``index`` (whole-number floats as small integers)."""
        array = np.asarray(array)
        if self.dtype is None:
            self.dtype = array.dtype.str
        elif array.dtype.str != self.dtype:
            raise DataError(
                f'sample {index} has dtype {array.dtype}, the earlier ones '
                f'{np.dtype(self.dtype)}: a cache entry holds one dtype',
                path=self.dir)
        stored = _compact(array)
        self._atomic_write(self._path(index),
                           lambda f: np.save(f, stored, allow_pickle=False))

    def load(self, index):
        """Load sample ``index``; a missing/corrupt file raises DataError."""
        path = self._path(index)
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise DataError(f'cached sample unreadable ({err}); delete '
                            f'{self.dir} to rebuild it', path=path) from err
        if self.dtype is not None and array.dtype.str != self.dtype:
            array = array.astype(self.dtype)
        return array

    def save_index(self, **info):
        """Mark the entry complete (write ``index.json`` last)."""
        index = dict(info, params=self.params)
        if self.dtype is not None:
            index['dtype'] = self.dtype
        data = json.dumps(index, sort_keys=True, indent=1).encode('utf-8')
        self._atomic_write(os.path.join(self.dir, INDEX),
                           lambda f: f.write(data))


def _compact(array):
    """``array`` as uint8/uint16 when it is floating and every value is a
    whole number that fits (the cast back is then exact), else unchanged."""
    if array.dtype.kind != 'f' or array.size == 0:
        return array
    low, high = array.min(), array.max()
    if not (np.isfinite(low) and np.isfinite(high)) or low < 0 or \
            high > 65535 or not np.array_equal(array, np.rint(array)):
        return array
    return array.astype(np.uint8 if high <= 255 else np.uint16)
