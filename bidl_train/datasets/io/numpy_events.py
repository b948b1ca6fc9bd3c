"""Plain numpy event files (``.npy`` / ``.npz``).

Accepted contents:

* ``.npy`` holding a structured array with fields ``t, x, y, p`` (any
  integer dtypes; extra fields ignored);
* ``.npz`` holding arrays ``t, x, y, p`` of equal length (SpikingJelly's
  event ``.npz`` layout), or a single structured array as above.

Files are loaded with ``allow_pickle=False``: object arrays are refused.
"""
import os
import tokenize
import zipfile
import zlib

import numpy as np

from bidl_train.errors import DataError

from .events import make_events
from .npy import load_checked

FIELDS = ('t', 'x', 'y', 'p')


def _check_fields(names, path):
    missing = [f for f in FIELDS if f not in names]
    if missing:
        raise DataError(
            f'event array lacks field(s) {missing}; an event .npy/.npz must '
            f'hold named fields/arrays {list(FIELDS)} (found {list(names)})',
            path=path)


#: what numpy and zipfile raise for empty, truncated or corrupt files (a
#: damaged .npy header is parsed as a Python literal, hence SyntaxError)
_LOAD_ERRORS = (ValueError, EOFError, OSError, KeyError, zipfile.BadZipFile,
                zlib.error, SyntaxError, tokenize.TokenError)


def read_numpy_events(path):
    """Read a ``.npy`` structured array or an ``.npz`` of ``t, x, y, p``."""
    path = os.fspath(path)
    try:
        return _read(path)
    except DataError:
        raise
    except _LOAD_ERRORS as err:
        raise DataError(
            f'not a readable .npy/.npz event file ({type(err).__name__}: '
            f'{err}); it is empty, truncated or corrupt', path=path) from None


def _read(path):
    obj = load_checked(path)
    if isinstance(obj, np.lib.npyio.NpzFile):
        with obj:
            names = list(obj.files)
            if len(names) == 1 and obj[names[0]].dtype.names:
                arr = obj[names[0]]
                _check_fields(arr.dtype.names, path)
                return make_events(*(arr[f] for f in FIELDS))
            _check_fields(names, path)
            cols = [np.asarray(obj[f]).reshape(-1) for f in FIELDS]
    else:
        if obj.dtype.names is None:
            raise DataError(
                f'.npy holds a plain {obj.dtype} array of shape {obj.shape}; '
                f'save a structured array with fields {list(FIELDS)} so the '
                'column order is not guessed', path=path)
        _check_fields(obj.dtype.names, path)
        cols = [obj[f].reshape(-1) for f in FIELDS]
    if len({c.size for c in cols}) != 1:
        raise DataError(f'arrays t, x, y, p differ in length '
                        f'({[c.size for c in cols]})', path=path)
    return make_events(*cols)
