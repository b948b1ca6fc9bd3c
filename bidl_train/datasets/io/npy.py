"""``np.load`` for data files, with the declared sizes checked first.

A ``.npy`` header declares the array's shape and dtype, and numpy allocates
that much memory before reading the data: a damaged or hostile header
declaring 2**40 elements makes ``np.load`` raise MemoryError (or, with
overcommit, take the machine's memory) instead of reporting a bad file. So
:func:`load_checked` reads each header first and refuses an array larger
than the bytes that follow it (for an ``.npz`` member: larger than the
member's declared size, itself bounded by what deflate can expand the
compressed bytes to), then loads with ``allow_pickle=False``.
"""
import math
import os
import tokenize
import zipfile
import zlib

import numpy as np
import numpy.lib.format as npy_format

from bidl_train.errors import DataError

#: deflate expands at most about 1032:1; anything beyond is a forged size
MAX_DEFLATE_RATIO = 1100

#: what numpy and zipfile raise for empty, truncated or corrupt files (a
#: damaged .npy header is parsed as a Python literal, hence SyntaxError)
LOAD_ERRORS = (ValueError, EOFError, OSError, KeyError, zipfile.BadZipFile,
               zlib.error, SyntaxError, tokenize.TokenError, TypeError)


def _array_bytes(f, where, path):
    """``(declared data bytes, header length, shape, dtype)`` of the .npy
    stream ``f``."""
    try:
        version = npy_format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = npy_format.read_array_header_1_0(f)
        else:
            shape, _, dtype = npy_format.read_array_header_2_0(f)
    except LOAD_ERRORS as err:
        raise DataError(f'{where}not a readable .npy header '
                        f'({type(err).__name__}: {err})', path=path) from None
    # Python ints: a damaged shape must not overflow int64
    return math.prod(shape) * dtype.itemsize, f.tell(), shape, dtype


def _check_npy(path):
    size = os.path.getsize(path)
    with open(path, 'rb') as f:
        need, header, shape, dtype = _array_bytes(f, '', path)
    if need > size - header:
        raise DataError(
            f'the header declares shape {shape} of {dtype} ({need} bytes) '
            f'but only {size - header} bytes follow it; the file is '
            'truncated or corrupt', path=path, offset=header)


def _check_npz(path):
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith('.npy'):
                    continue
                where = f'member {info.filename}: '
                if info.file_size > MAX_DEFLATE_RATIO * max(
                        info.compress_size, 1) + 4096:
                    raise DataError(
                        f'{where}declares {info.file_size} bytes from '
                        f'{info.compress_size} compressed ones, more than '
                        'deflate can produce; the file is corrupt',
                        path=path)
                with zf.open(info) as f:
                    need, header, shape, dtype = _array_bytes(f, where, path)
                if need > info.file_size - header:
                    raise DataError(
                        f'{where}the header declares shape {shape} of '
                        f'{dtype} ({need} bytes) but the member holds '
                        f'{info.file_size - header}; the file is truncated '
                        'or corrupt', path=path)
    except DataError:
        raise
    except LOAD_ERRORS as err:
        raise DataError(f'not a readable .npz ({type(err).__name__}: {err})',
                        path=path) from None


def load_checked(path):
    """``np.load(path, allow_pickle=False)`` after checking that every
    array's declared size fits the file (see module doc).

    ``.npz`` files (zip archives, detected by their first bytes) return an
    ``NpzFile`` as ``np.load`` does; close it (``with``) after use.
    """
    path = os.fspath(path)
    with open(path, 'rb') as f:
        magic = f.read(4)
    if magic.startswith(b'PK'):
        _check_npz(path)
    else:
        _check_npy(path)
    return np.load(path, allow_pickle=False)
