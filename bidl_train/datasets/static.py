"""Static image datasets in MNIST's IDX format (MNIST, Fashion-MNIST, ...).

Sample contract
---------------
``{'inputs': FloatTensor [1, H, W] in [0, 1], 'label': int,
'sample_idx': int}``: a static image without a time axis. Spike coding
happens either on the device (``SpikingDataPreprocessor(encoder=...)``,
batch ``[B, 1, H, W] -> [T, B, 1, H, W]``) or per sample in the pipeline
(``dict(type='SpikeEncode', encoder=...)`` -> ``[T, 1, H, W]``).

IDX format (LeCun's MNIST page)
-------------------------------
A 4-byte magic ``0x00 0x00 <dtype> <ndim>``, then ``ndim`` big-endian
uint32 sizes, then the data in C order, big-endian. dtype codes:
``0x08`` uint8, ``0x09`` int8, ``0x0B`` int16, ``0x0C`` int32,
``0x0D`` float32, ``0x0E`` float64. MNIST's image files carry magic 2051
(``0x00000803``: uint8, 3 dims ``[N, 28, 28]``) and its label files magic
2049 (``0x00000801``: uint8, ``[N]``). Files may be gzip-compressed
(``.gz`` suffix).

Layout
------
``<data_root>/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``, or the
same under ``<data_root>/raw/`` (torchvision's download folder).
"""
import gzip
import math
import os.path as osp
import zlib

import numpy as np
import torch
from torch.utils.data import Dataset

from bidl_train.errors import DataError
from bidl_train.registry import DATASETS, TRANSFORMS

from .paths import resolve_inside
from .pipeline import compose as _compose
from .pipeline import transforms_num_steps

#: File names of MNIST-format sets, per split.
IDX_FILES = {
    'train': dict(images='train-images-idx3-ubyte',
                  labels='train-labels-idx1-ubyte'),
    'test': dict(images='t10k-images-idx3-ubyte',
                 labels='t10k-labels-idx1-ubyte'),
}

#: IDX dtype code -> big-endian numpy dtype.
IDX_DTYPES = {
    0x08: np.dtype('u1'),
    0x09: np.dtype('i1'),
    0x0B: np.dtype('>i2'),
    0x0C: np.dtype('>i4'),
    0x0D: np.dtype('>f4'),
    0x0E: np.dtype('>f8'),
}

MNIST_CLASSES = [str(d) for d in range(10)]
FASHION_MNIST_CLASSES = [
    'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
    'Sneaker', 'Bag', 'Ankle boot'
]


def _read_bytes(path):
    """The IDX header and at most the data bytes it declares.

    Reading stops at the declared size, and the bytes are read in chunks,
    so memory follows what the file really holds: a damaged header that
    declares 2**40 elements meets the end of the file (a truncation error
    below), and a ``.gz`` file cannot inflate past its declared size.
    """
    opener = gzip.open if path.endswith('.gz') else open
    try:
        with opener(path, 'rb') as f:
            data = bytearray(f.read(4))
            if len(data) < 4:
                return bytes(data)
            data += f.read(4 * data[3])
            dtype = IDX_DTYPES.get(data[2])
            if dtype is None or len(data) < 4 + 4 * data[3]:
                return bytes(data)  # read_idx reports the bad header
            dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big')
                    for i in range(data[3])]
            left = math.prod(dims) * dtype.itemsize
            while left > 0:
                chunk = f.read(min(left, 1 << 24))
                if not chunk:
                    break
                data += chunk
                left -= len(chunk)
            return bytes(data)
    except (OSError, EOFError, zlib.error) as e:
        # gzip raises BadGzipFile (OSError), EOFError or zlib.error
        raise DataError(f'cannot read file ({e})', path=path) from None


def read_idx(path, expect_magic=None):
    """Read an IDX file (optionally ``.gz``) into a numpy array.

    Args:
        path (str): the file.
        expect_magic (int | None): e.g. 2051 for MNIST images; a different
            magic is a :class:`DataError`.
    """
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(f'truncated IDX header ({len(data)} bytes)',
                        path=path, offset=len(data))
    magic = int.from_bytes(data[:4], 'big')
    zero, code, ndim = data[0] << 8 | data[1], data[2], data[3]
    if zero != 0 or code not in IDX_DTYPES:
        raise DataError(
            f'bad IDX magic 0x{magic:08x} (expected 0x0000<dtype><ndim> with '
            f'dtype in {[hex(c) for c in IDX_DTYPES]}); not an IDX file?',
            path=path, offset=0)
    if expect_magic is not None and magic != expect_magic:
        raise DataError(
            f'IDX magic {magic} but expected {expect_magic} '
            f'(2051 = images [N, H, W], 2049 = labels [N]); are the image '
            'and label files swapped?', path=path, offset=0)
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f'truncated IDX header: {ndim} dimensions need '
                        f'{header} bytes, file has {len(data)}', path=path,
                        offset=len(data))
    shape = tuple(
        int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim))
    dtype = IDX_DTYPES[code]
    # Python ints: a corrupt header's dimensions must not overflow int64
    need = header + math.prod(shape) * dtype.itemsize
    if len(data) < need:
        raise DataError(
            f'truncated IDX data: shape {shape} of {dtype} needs {need} '
            f'bytes, file has {len(data)}', path=path, offset=len(data))
    array = np.frombuffer(data, dtype=dtype, count=math.prod(shape),
                          offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder('='))


def write_idx(path, array):
    """Write ``array`` as an IDX file (gzip when ``path`` ends in .gz)."""
    array = np.asarray(array)
    codes = {v.newbyteorder('=').str: k for k, v in IDX_DTYPES.items()}
    key = array.dtype.newbyteorder('=').str
    if key not in codes:
        raise ValueError(f'IDX cannot hold dtype {array.dtype}')
    code = codes[key]
    header = bytes([0, 0, code, array.ndim]) + b''.join(
        int(n).to_bytes(4, 'big') for n in array.shape)
    body = np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'wb') as f:
        f.write(header + body)
    return path


def _find(data_root, name):
    """Path of ``name`` or ``name.gz`` in data_root or data_root/raw."""
    for folder in (data_root, osp.join(data_root, 'raw')):
        for candidate in (name, name + '.gz'):
            path = osp.join(folder, candidate)
            if osp.isfile(path):  # and no link out of the data root
                return resolve_inside(data_root,
                                      osp.relpath(path, data_root))
    raise DataError(
        f'{name}[.gz] not found (looked in {data_root} and its raw/ '
        'folder); see datasets/MNIST/README.md for where to get it',
        path=osp.join(data_root, name))



@DATASETS.register_module()
class MNIST(Dataset):
    """MNIST (or any set in its IDX layout, e.g. Fashion-MNIST).

    Args:
        data_root (str): folder with the four IDX files (see module doc).
        split (str): ``'train'`` (60000) or ``'test'`` (10000).
        pipeline (list): transforms applied to the sample dict (e.g.
            ``SpikeEncode``).
        classes (list[str]): class names; default the digits ``'0'..'9'``.
    """

    def __init__(self, data_root, split='train', pipeline=(), classes=None):
        if split not in IDX_FILES:
            raise DataError(f"split must be 'train' or 'test', got {split!r}",
                            path=data_root)
        self.data_root = data_root
        self.split = split
        self._classes = list(classes or MNIST_CLASSES)
        names = IDX_FILES[split]
        img_path = _find(data_root, names['images'])
        lbl_path = _find(data_root, names['labels'])
        images = read_idx(img_path, expect_magic=2051)
        labels = read_idx(lbl_path, expect_magic=2049)
        if len(images) != len(labels):
            raise DataError(
                f'{len(images)} images but {len(labels)} labels in '
                f'{lbl_path}', path=img_path)
        if len(labels) and int(labels.max()) >= len(self._classes):
            raise DataError(
                f'label {int(labels.max())} is outside the '
                f'{len(self._classes)} classes; pass classes=[...]',
                path=lbl_path)
        self._images = images
        self._labels = labels.astype(np.int64)
        self.pipeline = _compose(pipeline)

    @property
    def metainfo(self):
        # images have no time axis (None) until a SpikeEncode in the
        # pipeline gives them one; an encoder in the model's data
        # preprocessor is the model's business, not the dataset's
        return dict(classes=list(self._classes),
                    num_steps=transforms_num_steps(self.pipeline.transforms))

    @classmethod
    def stated_num_steps(cls, cfg):
        """That of a ``SpikeEncode`` in the pipeline, else None."""
        return transforms_num_steps(
            _compose(cfg.get('pipeline') or ()).transforms)

    def __len__(self):
        return len(self._labels)

    def __getitem__(self, idx):
        idx = range(len(self))[idx]
        image = torch.from_numpy(self._images[idx].astype(np.float32) / 255.0)
        results = dict(inputs=image.unsqueeze(0),
                       label=int(self._labels[idx]), sample_idx=idx)
        return self.pipeline(results)


@DATASETS.register_module()
class FashionMNIST(MNIST):
    """Fashion-MNIST: MNIST's layout and sizes, ten clothing classes."""

    def __init__(self, data_root, split='train', pipeline=(), classes=None):
        super().__init__(data_root, split, pipeline,
                         classes or FASHION_MNIST_CLASSES)


@DATASETS.register_module()
class SyntheticMNIST(MNIST):
    """Generated digit glyphs in MNIST's IDX files (demo, no download).

    On first use writes the four IDX files into ``data_root`` with
    :func:`~bidl_train.datasets.synthetic.digits.make_synthetic_digits`
    (logging that they are synthetic), then reads them with :class:`MNIST`.
    Delete the folder to regenerate with other sizes.
    """

    def __init__(self,
                 data_root,
                 split='train',
                 pipeline=(),
                 num_train=2000,
                 num_test=500,
                 size=28,
                 seed=0):
        from bidl_train.datasets.synthetic.digits import make_synthetic_digits
        from bidl_train.datasets.synthetic.ensure import ensure_generated
        ensure_generated(
            data_root, 'SyntheticMNIST',
            dict(num_train=num_train, num_test=num_test, size=size,
                 seed=seed),
            [name for names in IDX_FILES.values() for name in names.values()],
            lambda: make_synthetic_digits(data_root, num_train, num_test,
                                          size, seed))
        super().__init__(data_root, split, pipeline)


__all__ = [
    'MNIST', 'FashionMNIST', 'SyntheticMNIST', 'read_idx', 'write_idx',
    'IDX_FILES'
]
