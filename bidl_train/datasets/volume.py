"""3D volume datasets (CT / MRI patches) with depth slices as time.

Sample contract
---------------
``{'inputs': FloatTensor, 'label': int, ...}`` where ``inputs`` is

* ``[T, 1, H, W]`` (``as_time=True``, default): depth slice ``d`` is time
  step ``t``, the way BIDL feeds Luna16Cls to a spiking network;
* ``[1, D, H, W]`` (``as_time=False``): one channel for a 3D convolution.

Data flow: reader -> volume ``float32 [D, H, W]`` in ``results['inputs']``
-> ``pipeline`` (3D transforms from ``transforms/volume.py``) -> depth
selection (``slice_stride``, ``num_steps``) -> layout above.
``uint8`` files are scaled to ``[0, 1]`` (``/255``); other dtypes keep their
values (e.g. Hounsfield units: add ``IntensityWindow`` to the pipeline).

Depth selection: ``slices = volume[::slice_stride]``; then, when
``num_steps`` is set, the ``num_steps`` central ones
(start ``(D' - num_steps) // 2``): one slice per time step, T = num_steps
(``num_slices`` is accepted as its old name, see
:mod:`bidl_train.utils.time_steps`; with ``as_time=False`` it is the depth
kept). A volume with fewer slices than
asked is an error, never silently padded. ``metainfo['num_steps']`` is T with
``as_time=True`` and ``num_steps`` set, else None (no time axis, or a depth
that the files decide).

Layouts
-------
* MedMNIST 3D: ``<data_root>/<flavor>.npz`` with ``{split}_images``
  ``uint8 [N, S, S, S]`` (S = 28 or 64; axes depth, height, width) and
  ``{split}_labels`` ``[N, 1]``, split in train/val/test.
* Luna16Cls (BIDL's prepared patches, see ``datasets/Luna16/README.md`` and
  ``tools/prepare_luna16.py``): ``<data_root>/<split>/<label>_<name>.npy``,
  each ``uint8 [8, 32, 32]`` (depth, height, width), label = the leading
  digit of the file name.
* VolumeFolder: ``<data_root>/<class>/<file>`` with ``.npy`` ``[D, H, W]``
  or NIfTI ``.nii`` / ``.nii.gz`` (needs ``pip install nibabel``; NIfTI's
  ``(x, y, z)`` axes are transposed to ``(z, y, x)`` = depth, height, width).
"""
import os
import os.path as osp
import re

import numpy as np
import torch
from torch.utils.data import Dataset

# Imported for its side effect: registers the volume transforms, so that a
# pipeline of config dicts resolves them even before the registry's
# ``locations`` list this module.
import bidl_train.datasets.transforms.volume  # noqa: F401
from bidl_train.errors import DataError
from bidl_train.registry import DATASETS, TRANSFORMS
from bidl_train.utils.time_steps import UNSET, resolve_num_steps

from .io.npy import load_checked
from .paths import resolve_inside, scan_inside
from .pipeline import compose as _compose


#: Class names of the MedMNIST v2 3D flavours (label index order).
MEDMNIST3D_CLASSES = {
    'organmnist3d': [
        'liver', 'kidney-right', 'kidney-left', 'femur-right', 'femur-left',
        'bladder', 'heart', 'lung-right', 'lung-left', 'spleen', 'pancreas'
    ],
    'nodulemnist3d': ['benign', 'malignant'],
    'adrenalmnist3d': ['normal', 'hyperplasia'],
    'fracturemnist3d': [
        'buckle rib fracture', 'nondisplaced rib fracture',
        'displaced rib fracture'
    ],
    'vesselmnist3d': ['vessel', 'aneurysm'],
    'synapsemnist3d': ['inhibitory synapse', 'excitatory synapse'],
}


def to_float_volume(array, path=None):
    """``[D, H, W]`` array -> float32; uint8 is scaled to ``[0, 1]``."""
    array = np.asarray(array)
    if array.ndim != 3:
        raise DataError(
            f'expected a 3D volume [depth, height, width], got shape '
            f'{array.shape}', path=path)
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if not (np.issubdtype(array.dtype, np.number)
            or array.dtype == np.bool_):
        raise DataError(f'volume has non-numeric dtype {array.dtype}',
                        path=path)
    return array.astype(np.float32)


def select_slices(volume, slice_stride=1, num_slices=None, path=None):
    """Depth sub-sampling then a central window of ``num_slices``."""
    if slice_stride < 1:
        raise ValueError(f'slice_stride must be >= 1, got {slice_stride}')
    volume = volume[::slice_stride]
    if num_slices is not None:
        depth = volume.shape[0]
        if depth < num_slices:
            raise DataError(
                f'{depth} depth slices (after slice_stride={slice_stride}) '
                f'but num_steps={num_slices} asked (num_slices in older '
                'configs); lower num_steps or slice_stride', path=path)
        start = (depth - num_slices) // 2
        volume = volume[start:start + num_slices]
    return volume


class _VolumeDataset(Dataset):
    """Shared sample assembly; subclasses implement ``_load(idx)``.

    ``_load`` returns ``(volume float32 [D, H, W], label, extra dict)``.
    """

    def __init__(self, classes, as_time, slice_stride, num_steps,
                 num_slices, pipeline):
        self._classes = list(classes)
        self.as_time = bool(as_time)
        self.slice_stride = int(slice_stride)
        self.num_steps = resolve_num_steps(type(self).__name__, num_steps,
                                           num_slices=num_slices)
        self.pipeline = _compose(pipeline)

    @property
    def metainfo(self):
        steps = self.num_steps if self.as_time else None
        return dict(classes=list(self._classes), num_steps=steps)

    @classmethod
    def stated_num_steps(cls, cfg):
        """``num_steps`` (old name ``num_slices``) with ``as_time`` (the
        default); None without it (no time axis) or when every slice is
        kept (the files decide)."""
        if not cfg.get('as_time', True):
            return None
        return resolve_num_steps(cls.__name__, cfg.get('num_steps', UNSET),
                                 num_slices=cfg.get('num_slices', UNSET))

    def _check_label(self, label, path):
        if not 0 <= label < len(self._classes):
            raise DataError(
                f'label {label} is outside the {len(self._classes)} classes '
                f'{self._classes}; pass classes=[...] that cover it',
                path=path)
        return int(label)

    def __getitem__(self, idx):
        idx = range(len(self))[idx]
        volume, label, extra = self._load(idx)
        results = dict(inputs=volume, label=label, sample_idx=idx, **extra)
        results = self.pipeline(results)
        vol = select_slices(
            np.asarray(results['inputs']), self.slice_stride,
            self.num_steps, path=extra.get('path'))
        vol = torch.from_numpy(np.ascontiguousarray(vol, dtype=np.float32))
        results['inputs'] = vol.unsqueeze(1) if self.as_time else \
            vol.unsqueeze(0)
        return results


@DATASETS.register_module()
class MedMNIST3D(_VolumeDataset):
    """MedMNIST v2 3D sets (NoduleMNIST3D, OrganMNIST3D, ...) from ``.npz``.

    Args:
        data_root (str): folder holding ``<flavor>.npz``, or the ``.npz``.
        flavor (str): file stem, e.g. ``'nodulemnist3d'``,
            ``'organmnist3d_64'``.
        split (str): ``'train'``, ``'val'`` or ``'test'``.
        as_time, slice_stride, num_steps (old name num_slices), pipeline:
            see module doc.
        classes (list[str] | None): default from ``MEDMNIST3D_CLASSES``;
            required for an unknown flavour.
    """

    def __init__(self,
                 data_root,
                 flavor='nodulemnist3d',
                 split='train',
                 as_time=True,
                 slice_stride=1,
                 num_steps=UNSET,
                 pipeline=(),
                 classes=None,
                 num_slices=UNSET):
        path = data_root if data_root.endswith('.npz') else osp.join(
            data_root, f'{flavor}.npz')
        if split not in ('train', 'val', 'test'):
            raise DataError(
                f"split must be 'train', 'val' or 'test', got {split!r}",
                path=path)
        base = re.sub(r'_\d+$', '', flavor)  # organmnist3d_64 -> organmnist3d
        if classes is None:
            if base not in MEDMNIST3D_CLASSES:
                raise DataError(
                    f'unknown MedMNIST flavour {flavor!r}; pass classes=[...] '
                    f'(known: {sorted(MEDMNIST3D_CLASSES)})', path=path)
            classes = MEDMNIST3D_CLASSES[base]
        super().__init__(classes, as_time, slice_stride, num_steps,
                         num_slices, pipeline)
        if path != data_root:  # no link out of the data root
            path = resolve_inside(data_root, f'{flavor}.npz')
        self.path = path
        if not osp.isfile(path):
            raise DataError(
                f'MedMNIST file not found; download {flavor}.npz (MedMNIST '
                'v2, Zenodo record 10519652) into this folder', path=path)
        try:
            with load_checked(path) as npz:
                keys = set(npz.files)
                need = {f'{split}_images', f'{split}_labels'}
                if not need <= keys:
                    raise DataError(
                        f'missing arrays {sorted(need - keys)} (has '
                        f'{sorted(keys)})', path=path)
                images = npz[f'{split}_images']
                labels = npz[f'{split}_labels']
        except (OSError, ValueError) as e:
            if isinstance(e, DataError):
                raise
            raise DataError(f'not a readable .npz ({e})', path=path) from None
        if images.ndim != 4:
            raise DataError(
                f'{split}_images must be [N, D, H, W], got {images.shape}',
                path=path)
        labels = labels.reshape(len(labels), -1)
        if len(labels) != len(images) or labels.shape[1] != 1:
            raise DataError(
                f'{split}_labels must be [N, 1] with N={len(images)}, got '
                f'{labels.shape}', path=path)
        self._images = images
        self._labels = [self._check_label(int(y), path) for y in labels[:, 0]]

    def __len__(self):
        return len(self._labels)

    def _load(self, idx):
        return (to_float_volume(self._images[idx], self.path),
                self._labels[idx], {})


def _load_array_file(path):
    """Read a ``.npy`` or NIfTI volume as ``[D, H, W]``."""
    if path.endswith('.npy'):
        try:
            return load_checked(path)
        except DataError:
            raise
        except Exception as e:  # a damaged header raises even SyntaxError
            raise DataError(f'not a readable .npy ({e})', path=path) from None
    try:
        import nibabel
    except ImportError:
        raise DataError('reading NIfTI needs nibabel: pip install nibabel',
                        path=path) from None
    try:
        data = np.asarray(nibabel.load(path).dataobj)
    except Exception as e:  # nibabel raises many types for bad files
        raise DataError(f'not a readable NIfTI file ({e})',
                        path=path) from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DataError(f'expected a 3D NIfTI volume, got {data.shape}',
                        path=path)
    return data.transpose(2, 1, 0)  # (x, y, z) -> (depth, height, width)


class _FileVolumeDataset(_VolumeDataset):
    """Volumes stored one per file; ``self._items`` = [(path, label)]."""

    def __len__(self):
        return len(self._items)

    def _load(self, idx):
        path, label = self._items[idx]
        return (to_float_volume(_load_array_file(path), path), label,
                dict(path=path))


@DATASETS.register_module()
class Luna16Cls(_FileVolumeDataset):
    """BIDL's LUNA16 patch classification set (32x32, 8 slices as time).

    Args:
        data_root (str): folder holding the split folders.
        split (str): split folder name: ``'train'`` / ``'test'`` (what
            ``tools/prepare_luna16.py`` writes) or BIDL's ``'train3'`` /
            ``'test3'``.
        classes (list[str]): names of labels 0 and 1. Default
            ``['non-nodule', 'nodule']`` (LUNA16 ``candidates.csv`` classes,
            what our prepare tool writes); BIDL names its release
            ``['malignant', 'benign']``.
        patch_shape (tuple): expected ``(D, H, W)`` of every patch.
    """

    def __init__(self,
                 data_root,
                 split='train',
                 as_time=True,
                 slice_stride=1,
                 num_steps=UNSET,
                 pipeline=(),
                 classes=('non-nodule', 'nodule'),
                 patch_shape=(8, 32, 32),
                 num_slices=UNSET):
        super().__init__(classes, as_time, slice_stride, num_steps,
                         num_slices, pipeline)
        self.patch_shape = tuple(patch_shape)
        folder = osp.join(data_root, split)
        if not osp.isdir(folder):
            have = sorted(os.listdir(data_root)) if osp.isdir(
                data_root) else []
            raise DataError(
                f'no split folder {split!r} (found {have}); run '
                'tools/prepare_luna16.py or point data_root at BIDL\'s '
                'prepared patches', path=folder)
        items = []
        for name, path in scan_inside(data_root, folder):
            if not name.endswith('.npy'):
                raise DataError('not a .npy patch; move it out of the split '
                                'folder', path=path)
            if not name[0].isdigit():
                raise DataError(
                    'file name must start with the label digit '
                    '(<label>_<seriesuid>_<idx>.npy)', path=path)
            items.append((path, self._check_label(int(name[0]), path)))
        if not items:
            raise DataError('no .npy patches in this folder', path=folder)
        self._items = items

    def _load(self, idx):
        volume, label, extra = super()._load(idx)
        if volume.shape != self.patch_shape:
            raise DataError(
                f'patch has shape {volume.shape}, expected '
                f'{self.patch_shape}; re-run tools/prepare_luna16.py or set '
                'patch_shape', path=extra['path'])
        return volume, label, extra


@DATASETS.register_module()
class VolumeFolder(_FileVolumeDataset):
    """One class per sub-folder of ``.npy`` / ``.nii`` / ``.nii.gz`` files.

    Args:
        data_root (str): ``<data_root>/<class>/<file>``.
        classes (list[str] | None): default: sorted sub-folder names; with
            an explicit list, every sub-folder must be in it.
        extensions (tuple[str]): accepted file endings; other files are an
            error (nothing is skipped silently).
    """

    def __init__(self,
                 data_root,
                 classes=None,
                 as_time=True,
                 slice_stride=1,
                 num_steps=UNSET,
                 pipeline=(),
                 extensions=('.npy', '.nii', '.nii.gz'),
                 num_slices=UNSET):
        if not osp.isdir(data_root):
            raise DataError('volume folder not found', path=data_root)
        found = sorted(d for d in os.listdir(data_root)
                       if osp.isdir(osp.join(data_root, d))
                       and not d.startswith('.'))
        if classes is None:
            classes = found
        for d in found:
            if d not in classes:
                raise DataError(
                    f'sub-folder {d!r} is not one of the classes '
                    f'{list(classes)}', path=osp.join(data_root, d))
        if not classes:
            raise DataError('no class sub-folders', path=data_root)
        super().__init__(classes, as_time, slice_stride, num_steps,
                         num_slices, pipeline)
        items = []
        for label, cls in enumerate(self._classes):
            folder = osp.join(data_root, cls)
            if not osp.isdir(folder):
                continue  # a class may legitimately have no samples here
            for name, path in scan_inside(data_root, folder):
                if not name.endswith(tuple(extensions)):
                    raise DataError(
                        f'unsupported file (accepted: {list(extensions)})',
                        path=path)
                items.append((path, label))
        if not items:
            raise DataError('no volumes found', path=data_root)
        self._items = items


@DATASETS.register_module()
class SyntheticMedMNIST3D(MedMNIST3D):
    """MedMNIST-style volumes with / without a nodule-like blob (demo).

    Writes ``<data_root>/synthetic_nodule3d.npz`` on first use with
    :func:`~bidl_train.datasets.synthetic.volume.make_synthetic_medmnist3d`
    (logging that it is synthetic), then reads it with :class:`MedMNIST3D`.
    Classes: ``['no nodule', 'nodule']``.
    """

    FLAVOR = 'synthetic_nodule3d'

    def __init__(self,
                 data_root,
                 split='train',
                 num_train=64,
                 num_val=16,
                 num_test=16,
                 size=28,
                 seed=0,
                 **kwargs):
        from bidl_train.datasets.synthetic.ensure import ensure_generated
        from bidl_train.datasets.synthetic.volume import (
            SYNTHETIC_CLASSES, make_synthetic_medmnist3d)
        file = f'{self.FLAVOR}.npz'
        ensure_generated(
            data_root, 'SyntheticMedMNIST3D',
            dict(num_train=num_train, num_val=num_val, num_test=num_test,
                 size=size, seed=seed), [file],
            lambda: make_synthetic_medmnist3d(
                osp.join(data_root, file), num_train, num_val, num_test,
                size, seed))
        super().__init__(data_root, flavor=self.FLAVOR, split=split,
                         classes=SYNTHETIC_CLASSES, **kwargs)
