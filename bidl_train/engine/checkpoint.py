"""Safe checkpoint loading for mmengine under torch >= 2.6.

mmengine 0.10.7 saves its ``MessageHub`` inside every checkpoint. That state
holds ``HistoryBuffer`` objects (numpy arrays inside) and, for the statistics
methods, pickled ``getattr(HistoryBuffer, 'mean')`` calls. torch's
``weights_only=True`` unpickler refuses those, so ``--resume`` fails. We keep
``weights_only=True`` and allow exactly the globals such a checkpoint needs:

* ``HistoryBuffer`` itself;
* numpy's array reconstruction (``_reconstruct``, ``ndarray``, ``dtype``,
  ``scalar`` and the dtype classes);
* ``getattr`` replaced by a function that only returns HistoryBuffer's own
  statistics methods (``min``, ``max``, ``current``, ``mean`` and any method
  registered with ``HistoryBuffer.register_statistics``).

Anything else in the pickle (an ``os.system`` payload, an arbitrary class) is
refused before it runs, with a :class:`~bidl_train.errors.CheckpointError`.
Never ``weights_only=False``.

Every checkpoint enters through :func:`load_checkpoint_file`: a local path, or
an http(s) URL downloaded to a temporary file first; both then go through the
same allow-listed ``torch.load``. Other remote schemes (s3://, pavi://,
open-mmlab://, torchvision://, ...) are refused with advice to download the
file. :func:`install_safe_loader` points all of mmengine's loaders at it.
"""
import contextlib
import http.client
import os
import os.path as osp
import re
import tempfile
import urllib.error
import urllib.request
import zipfile

import numpy as np
import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from bidl_train.errors import CheckpointError


def _history_buffer_getattr(obj, name):
    """``getattr`` restricted to HistoryBuffer's statistics methods."""
    # the defaults are only put into ``_statistics_methods`` when the first
    # HistoryBuffer is constructed, so name them explicitly
    allowed = {'min', 'max', 'current', 'mean'}
    allowed.update(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and name in allowed:
        return getattr(HistoryBuffer, name)
    raise CheckpointError(
        f'checkpoint asks for getattr({obj!r}, {name!r}); only the statistics '
        'methods of mmengine.logging.HistoryBuffer are allowed')


def _numpy_globals():
    """numpy names a pickled ndarray refers to, under numpy 1 and 2 paths."""
    reconstruct = np._core.multiarray._reconstruct if hasattr(
        np, '_core') else np.core.multiarray._reconstruct
    scalar = np._core.multiarray.scalar if hasattr(
        np, '_core') else np.core.multiarray.scalar
    allowed = [np.ndarray, np.dtype]
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        allowed.append((reconstruct, f'{module}._reconstruct'))
        allowed.append((scalar, f'{module}.scalar'))
    # numpy 2 pickles dtypes as their concrete classes (numpy.dtypes.Float64DType)
    dtype_classes = {type(np.dtype(c)) for c in 'bBhHiIlLqQefdg?'}
    allowed.extend(sorted(dtype_classes, key=lambda c: c.__name__))
    return allowed


def allowed_globals():
    """The complete allow-list passed to ``torch.serialization.safe_globals``."""
    return [HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr')
            ] + _numpy_globals()


def safe_load(filename, map_location='cpu'):
    """``torch.load`` with ``weights_only=True`` and the narrow allow-list.

    Raises:
        CheckpointError: the file is missing, unreadable, or needs a global
            outside the allow-list (the payload is never executed).
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise CheckpointError(f'checkpoint {filename} does not exist')
    try:
        with torch.serialization.safe_globals(allowed_globals()):
            return torch.load(
                filename, map_location=map_location, weights_only=True)
    except CheckpointError as err:
        raise CheckpointError(f'{filename}: {err}') from None
    except Exception as err:  # torch raises UnpicklingError/RuntimeError
        first_line = str(err).strip().splitlines()
        reason = next((ln.strip() for ln in first_line
                       if 'Unsupported' in ln or 'GLOBAL' in ln),
                      first_line[0] if first_line else type(err).__name__)
        raise CheckpointError(
            f'refusing to load checkpoint {filename}: it is not a plain '
            f'weights/optimizer checkpoint ({reason}). bidl-train loads '
            'checkpoints with weights_only=True and never runs pickled code; '
            're-save the weights with torch.save(model.state_dict()) from a '
            'trusted environment if you trust this file.') from None


# ---------------------------------------------------------------------------
# Every checkpoint source: local paths, http(s) URLs, nothing else
# ---------------------------------------------------------------------------
#: Downloads larger than this are refused (a checkpoint of this framework's
#: models is megabytes; the cap stops a hostile server from filling the disk).
MAX_DOWNLOAD_BYTES = 4 * 2**30
#: Seconds a download may wait on the server for any single read.
DOWNLOAD_TIMEOUT_S = 60
_DOWNLOAD_CHUNK = 1 << 20

# 'https://x', 's3://x', 'open-mmlab:s3://x': a scheme, then '://'
_SCHEME = re.compile(
    r'^([A-Za-z][A-Za-z0-9+.\-]*(?::[A-Za-z][A-Za-z0-9+.\-]*)?)://')


def _scheme_of(source):
    """The URL scheme of ``source`` ('https', 'open-mmlab:s3'), or None."""
    match = _SCHEME.match(source)
    return match.group(1).lower() if match else None


def check_checkpoint_source(source, local_must_exist=True):
    """Refuse a checkpoint source :func:`load_checkpoint_file` cannot load.

    Cheap (no download), so commands call it before building anything.

    Raises:
        CheckpointError: ``source`` uses a scheme other than http(s), or
            (with ``local_must_exist``) names a local file that is missing.
    """
    source = os.fspath(source)
    scheme = _scheme_of(source)
    if scheme in ('http', 'https'):
        return
    if scheme is not None:
        raise CheckpointError(
            f'checkpoint {source}: bidl-train does not load checkpoints from '
            f'{scheme}:// sources (only local files and http:// or '
            'https:// URLs, both with the weights-only allow-list); fetch '
            'the file yourself and pass its local path')
    path = osp.expanduser(source)
    if local_must_exist and not osp.isfile(path):
        raise CheckpointError(f'checkpoint {path} does not exist')


def is_url(source):
    """Whether ``source`` is an http(s) URL (else a local path)."""
    return _scheme_of(os.fspath(source)) in ('http', 'https')


@contextlib.contextmanager
def local_checkpoint(source):
    """A local file holding the checkpoint ``source`` names.

    A local path is yielded as it is. An http(s) URL is downloaded to a
    temporary file first (streamed, at most :data:`MAX_DOWNLOAD_BYTES`,
    :data:`DOWNLOAD_TIMEOUT_S` per read) that is removed on exit; a
    CheckpointError raised inside names the URL rather than that copy.
    Nothing is unpickled here: read the file with :func:`safe_load`.
    """
    source = os.fspath(source)
    check_checkpoint_source(source)
    if not is_url(source):
        yield osp.expanduser(source)
        return
    with tempfile.TemporaryDirectory(prefix='bidl_ckpt_') as tmp_dir:
        local = osp.join(tmp_dir, 'checkpoint.pth')
        _download(source, local)
        try:
            yield local
        except CheckpointError as err:
            raise CheckpointError(str(err).replace(local, source)) from None


def load_checkpoint_file(source, map_location='cpu'):
    """Load a checkpoint from a local path or an http(s) URL, safely.

    The single entry point for every checkpoint bidl-train reads (mmengine's
    Runner through :func:`install_safe_loader`, bidl-test, bidl-deploy,
    tools/analyze.py): the file, or a URL's downloaded copy (see
    :func:`local_checkpoint`), is unpickled by :func:`safe_load`, with
    ``weights_only=True`` and the allow-list. Other schemes are refused.

    Raises:
        CheckpointError: unsupported scheme, missing file, failed download,
            or a checkpoint that needs a global outside the allow-list.
    """
    with local_checkpoint(source) as path:
        return safe_load(path, map_location)


def _download(url, dest):
    """Stream ``url`` into ``dest``; CheckpointError on any failure."""
    limit = MAX_DOWNLOAD_BYTES
    too_big = (f'checkpoint {url} is larger than the {limit} byte download '
               'limit; download it yourself and pass the local path')
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as \
                resp, open(dest, 'wb') as out:
            declared = resp.headers.get('Content-Length')
            if declared and declared.isdigit() and int(declared) > limit:
                raise CheckpointError(too_big)
            written = 0
            while True:
                chunk = resp.read(_DOWNLOAD_CHUNK)
                if not chunk:
                    break
                written += len(chunk)
                if written > limit:  # the server may lie or omit the size
                    raise CheckpointError(too_big)
                out.write(chunk)
    except CheckpointError:
        raise
    except (OSError, ValueError, http.client.HTTPException) as err:
        # URLError/HTTPError/timeouts are OSErrors; a malformed URL is a
        # ValueError; a truncated response an HTTPException
        reason = err if isinstance(err, urllib.error.HTTPError) else (
            getattr(err, 'reason', None) or err)
        raise CheckpointError(
            f'cannot download checkpoint {url}: {reason}; check the URL or '
            'download the file yourself and pass its local path') from None


def install_safe_loader():
    """Route every mmengine checkpoint load through our safe loader.

    mmengine picks a loader by path prefix (``CheckpointLoader._schemes``:
    '' for local files, http(s)://, pavi://, s3://, open-mmlab://, ...), and
    its own loaders call ``torch.load`` without ``weights_only`` or
    ``torch.hub``, which unpickle anything. Every registered prefix is
    re-pointed at ours, and the lookup itself is replaced so that a prefix
    registered later still cannot reach another loader. Idempotent.
    """
    schemes = list(CheckpointLoader._schemes)
    CheckpointLoader.register_scheme(prefixes=schemes, force=True)(
        load_from_bidl_safe)
    CheckpointLoader._get_checkpoint_loader = classmethod(
        _always_bidl_safe)


def _always_bidl_safe(cls, path):
    return load_from_bidl_safe


def load_from_bidl_safe(filename, map_location=None):
    """mmengine's loader signature; mmengine logs it as 'bidl_safe'."""
    return load_checkpoint_file(filename, map_location)


# ---------------------------------------------------------------------------
# Loading weights into a model built from a config
# ---------------------------------------------------------------------------
def _names(keys, limit=5):
    more = len(keys) - limit
    return ', '.join(keys[:limit]) + (f' (+{more} more)' if more > 0 else '')


def _shape(value):
    return list(value.shape) if torch.is_tensor(value) else \
        type(value).__name__


def weights_mismatch(state, model):
    """One line saying how ``state`` does not fit ``model`` (None: it fits).

    Names the first key whose shape differs with both shapes, then the
    keys the model lacks and those it does not have, by name.
    """
    mine = model.state_dict()
    missing = [k for k in mine if k not in state]
    unexpected = [k for k in state if k not in mine]
    wrong = [k for k in mine if k in state and (
        not torch.is_tensor(state[k]) or state[k].shape != mine[k].shape)]
    parts = []
    if wrong:
        key = wrong[0]
        more = f' ({len(wrong) - 1} more keys differ)' if len(wrong) > 1 \
            else ''
        parts.append(f'{key} has shape {_shape(state[key])} in the '
                     f'checkpoint but {_shape(mine[key])} in the model{more}')
    if missing:
        parts.append(f'missing keys {_names(missing)}')
    if unexpected:
        parts.append(f'unexpected keys {_names(unexpected)}')
    return '; '.join(parts) or None


def load_model_weights(model, source):
    """Load the weights of checkpoint ``source`` (a local path or an
    http(s) URL) into ``model``, safely (:func:`load_checkpoint_file`).

    The one weight loader of bidl-deploy and tools/analyze.py. Accepts a
    full training checkpoint (``state_dict`` inside) or a bare state dict,
    with or without a ``module.`` prefix (saved from a wrapped model).

    Raises:
        CheckpointError: no state dict in the file, or one that does not
            fit the model: one line naming the first key whose shape
            differs (with both shapes) and the missing and unexpected keys.
    """
    install_safe_loader()  # anything mmengine loads goes through it too
    ckpt = load_checkpoint_file(source)
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f'{source}: no state_dict in the checkpoint')
    state = {k[len('module.'):] if k.startswith('module.') else k: v
             for k, v in state.items()}
    problem = weights_mismatch(state, model)
    if problem:
        raise CheckpointError(
            f'{source} does not fit the model of the config: {problem}; was '
            'it trained with this config (and the same --cfg-options)?')
    model.load_state_dict(state, strict=True)


# ---------------------------------------------------------------------------
# Writing: atomic files, so a kill during saving never leaves a torn file
# ---------------------------------------------------------------------------
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend, writing through a temporary file.

    ``put``/``put_text`` write ``<name>.tmp<pid>`` in the same folder, flush
    it to disk and ``os.replace`` it onto the final name: readers see either
    the old file or the complete new one, never a partial write. Selected for
    checkpoints with ``backend_args=dict(backend='atomic_local')``.
    """

    def put(self, obj, filepath):
        _atomic_write(filepath, obj, 'wb')

    def put_text(self, obj, filepath, encoding='utf-8'):
        _atomic_write(filepath, obj.encode(encoding), 'wb')


def _atomic_write(filepath, data, mode):
    """Write ``data`` to ``filepath`` whole or not at all.

    Raises:
        CheckpointError: the disk is full, read-only or otherwise refused
            the write. The temporary file is gone, ``filepath`` is as it
            was, and mmengine has not yet pointed ``last_checkpoint`` at it
            (it does so only after a successful save).
    """
    filepath = os.fspath(filepath)
    tmp = f'{filepath}.tmp{os.getpid()}'
    try:
        os.makedirs(osp.dirname(osp.abspath(filepath)), exist_ok=True)
        with open(tmp, mode) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except OSError as err:
        raise CheckpointError(_write_failure(filepath, err)) from None
    finally:
        _remove_quietly(tmp)


def _remove_quietly(path):
    """Remove a leftover temporary file, if any (after a successful
    ``os.replace`` there is none; on a read-only disk none was made)."""
    try:
        os.remove(path)
    except OSError:
        pass


def _write_failure(filepath, err):
    """One line: what failed, what is left to resume from, what to do."""
    reason = err.strerror or str(err)
    last = find_resume_checkpoint(osp.dirname(osp.abspath(filepath)))
    left = (f'the last complete checkpoint is {last}' if last else
            'no complete checkpoint is left in the work dir')
    action = ('free space or choose another --work-dir and --resume'
              if last else 'free space or choose another --work-dir')
    return f'could not write checkpoint {filepath}: {reason}; {left}; {action}'


def install_atomic_backend():
    """Make ``backend='atomic_local'`` available to mmengine's file I/O."""
    register_backend('atomic_local', AtomicLocalBackend, force=True)


# ---------------------------------------------------------------------------
# Resuming: find the newest complete checkpoint
# ---------------------------------------------------------------------------
def _is_complete(path):
    """A torch zip checkpoint whose central directory is intact."""
    return osp.isfile(path) and zipfile.is_zipfile(path)


def find_resume_checkpoint(work_dir):
    """The checkpoint ``--resume auto`` should continue from, or None.

    ``last_checkpoint`` names it; if that file is missing, empty or names a
    torn file (a kill while mmengine wrote it), fall back to the newest
    complete ``epoch_N.pth``/``iter_N.pth`` in the work dir.
    """
    marker = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(marker):
        with open(marker) as f:
            named = f.read().strip()
        if named and _is_complete(named):
            return named
    candidates = []
    if osp.isdir(work_dir):
        for name in os.listdir(work_dir):
            match = re.fullmatch(r'(epoch|iter)_(\d+)\.pth', name)
            path = osp.join(work_dir, name)
            if match and _is_complete(path):
                candidates.append((int(match.group(2)), path))
    return max(candidates)[1] if candidates else None
