"""MNIST IDX reader: byte layout, errors naming the file, synthetic set."""
import gzip
import struct

import numpy as np
import pytest
import torch

from bidl_train.datasets.static import (MNIST, SyntheticMNIST, read_idx,
                                        write_idx)
from bidl_train.errors import DataError


def _idx_bytes(magic, dims, payload):
    """IDX file bytes assembled by hand with struct (big-endian)."""
    return struct.pack('>I', magic) + b''.join(
        struct.pack('>I', d) for d in dims) + payload


def _write_mnist(root, n=3, gz=False, split='train'):
    prefix = 'train' if split == 'train' else 't10k'
    images = np.arange(n * 2 * 3, dtype=np.uint8).reshape(n, 2, 3) * 10
    labels = np.array([7, 0, 9][:n], np.uint8)
    suffix = '.gz' if gz else ''
    opener = gzip.open if gz else open
    with opener(root / f'{prefix}-images-idx3-ubyte{suffix}', 'wb') as f:
        f.write(_idx_bytes(2051, (n, 2, 3), images.tobytes()))
    with opener(root / f'{prefix}-labels-idx1-ubyte{suffix}', 'wb') as f:
        f.write(_idx_bytes(2049, (n, ), labels.tobytes()))
    return images, labels


@pytest.mark.parametrize('gz', [False, True])
def test_reads_hand_written_idx_files(tmp_path, gz):
    images, labels = _write_mnist(tmp_path, gz=gz)
    ds = MNIST(str(tmp_path), split='train')
    assert len(ds) == 3
    s = ds[2]
    assert s['label'] == 9
    assert s['inputs'].shape == (1, 2, 3)
    assert s['inputs'].dtype == torch.float32
    # pixel (1, 2) of image 2 = (2*6 + 1*3 + 2) * 10 = 170 -> 170/255
    assert s['inputs'][0, 1, 2].item() == pytest.approx(170 / 255)
    assert ds.metainfo['classes'][9] == '9'


def test_big_endian_multibyte_dtype(tmp_path):
    # dtype 0x0C = int32, 1 dim of 2: values 1 and 258 big-endian
    path = tmp_path / 'x.idx'
    path.write_bytes(bytes([0, 0, 0x0C, 1]) + struct.pack('>I', 2) +
                     struct.pack('>ii', 1, 258))
    assert read_idx(str(path)).tolist() == [1, 258]
    write_idx(str(tmp_path / 'y.idx'), np.array([[1.5, -2]], np.float32))
    raw = (tmp_path / 'y.idx').read_bytes()
    assert raw[:4] == bytes([0, 0, 0x0D, 2])
    assert struct.unpack('>ff', raw[12:]) == (1.5, -2.0)


def test_bad_magic_names_the_file(tmp_path):
    _write_mnist(tmp_path)
    bad = tmp_path / 'train-labels-idx1-ubyte'
    bad.write_bytes(_idx_bytes(2051, (3, 2, 3), bytes(18)))  # images magic
    with pytest.raises(DataError, match='train-labels-idx1-ubyte.*2049'):
        MNIST(str(tmp_path))
    bad.write_bytes(b'PK\x03\x04' + bytes(8))  # a zip, not IDX
    with pytest.raises(DataError, match='bad IDX magic'):
        MNIST(str(tmp_path))


def test_truncation_names_the_file(tmp_path):
    _write_mnist(tmp_path)
    img = tmp_path / 'train-images-idx3-ubyte'
    img.write_bytes(img.read_bytes()[:-5])
    with pytest.raises(DataError) as err:
        MNIST(str(tmp_path))
    assert 'train-images-idx3-ubyte' in str(err.value)
    assert 'truncated' in str(err.value)
    img.write_bytes(b'\x00\x00')
    with pytest.raises(DataError, match='truncated IDX header'):
        read_idx(str(img))


def test_missing_files_and_label_count(tmp_path):
    with pytest.raises(DataError, match='t10k-images-idx3-ubyte'):
        MNIST(str(tmp_path), split='test')
    _write_mnist(tmp_path)
    (tmp_path / 'train-labels-idx1-ubyte').write_bytes(
        _idx_bytes(2049, (2, ), bytes([1, 2])))
    with pytest.raises(DataError, match='3 images but 2 labels'):
        MNIST(str(tmp_path))


def test_raw_subfolder_and_pipeline_encoding(tmp_path):
    raw = tmp_path / 'raw'
    raw.mkdir()
    _write_mnist(raw, split='test')
    from bidl_train.datasets.transforms import SpikeEncode
    ds = MNIST(str(tmp_path), split='test', pipeline=[
        SpikeEncode(dict(type='LatencyEncoder', T=4, method='linear',
                         tau=None))
    ])
    x = ds[0]['inputs']
    assert x.shape == (4, 1, 2, 3)
    # pixel 0 of image 0 is 0 -> silent; every other pixel fires once
    assert x[:, 0, 0, 0].sum() == 0 and x.sum() == 5


def test_synthetic_mnist_generates_balanced_idx(tmp_path):
    root = tmp_path / 'syn'
    ds = SyntheticMNIST(str(root), split='train', num_train=40, num_test=20)
    assert len(ds) == 40
    labels = [ds[i]['label'] for i in range(40)]
    assert np.bincount(labels).tolist() == [4] * 10
    # the files are real MNIST IDX files: magic numbers and shapes
    assert read_idx(str(root / 't10k-images-idx3-ubyte'),
                    expect_magic=2051).shape == (20, 28, 28)
    assert len(SyntheticMNIST(str(root), split='test', num_train=40,
                              num_test=20)) == 20
    # digits differ by shape: the class means are not all alike
    imgs = torch.stack([ds[i]['inputs'][0] for i in range(40)])
    means = torch.stack([imgs[i::10].mean(0) for i in range(10)])
    assert (means[1] - means[8]).abs().mean() > 0.05
