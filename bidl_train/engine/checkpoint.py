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
"""
import os
import os.path as osp
import re
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


def install_safe_loader():
    """Route mmengine's local-file checkpoint loading through :func:`safe_load`.

    mmengine looks up its loader by path prefix; '' is the local-file scheme.
    Re-registering it is idempotent.
    """
    CheckpointLoader.register_scheme(prefixes='', force=True)(
        _load_from_local)


def _load_from_local(filename, map_location):
    return safe_load(filename, map_location)


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
    filepath = os.fspath(filepath)
    os.makedirs(osp.dirname(osp.abspath(filepath)), exist_ok=True)
    tmp = f'{filepath}.tmp{os.getpid()}'
    try:
        with open(tmp, mode) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


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
