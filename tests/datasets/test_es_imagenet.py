"""ES-ImageNet reader on release-layout files written by the test."""
import numpy as np
import pytest

from bidl_train.datasets.es_imagenet import ESImageNet
from bidl_train.errors import DataError
from helpers.layout_writers import write_es_imagenet


def test_events_land_where_the_authors_loader_puts_them(tmp_path):
    # a = 190 rows, b = 254 cols: dx = (254 - 190) // 2 = 32, dy = 0.
    # pos (x=20, y=100, t=1) -> canvas (t0, row 52, col 100) -> crop
    # [16:240] -> (36, 84), channel 1 (ON);
    # neg (x=100, y=30, t=8) -> canvas (t7, 132, 30) -> (116, 14), channel 0;
    # pos (x=5, y=5, t=3) -> canvas (37, 5): column 5 < 16 is cropped away.
    write_es_imagenet(tmp_path, [
        ('class7/class7_1.npz', 7, 190, 254,
         [[20, 100, 1], [5, 5, 3]], [[100, 30, 8]]),
    ])
    ds = ESImageNet(str(tmp_path), split='train')
    s = ds[0]
    x = s['inputs']
    assert x.shape == (8, 2, 224, 224)
    assert s['label'] == 7
    assert x.sum() == 2
    assert x[0, 1, 36, 84] == 1
    assert x[7, 0, 116, 14] == 1
    assert ds.metainfo['classes'][7] == 'class7'
    assert len(ds.metainfo['classes']) == 1000


def test_centring_uses_width_offset(tmp_path):
    # a = 254, b = 170: dx = 0, dy = (254 - 170) // 2 = 42
    # neg (x=50, y=10, t=2) -> canvas (t1, 50, 52) -> crop (34, 36)
    write_es_imagenet(tmp_path, [('class0/class0_1.npz', 0, 254, 170, [],
                               [[50, 10, 2]])])
    x = ESImageNet(str(tmp_path))[0]['inputs']
    assert x[1, 0, 34, 36] == 1 and x.sum() == 1


def test_jpeg_names_and_val_split(tmp_path):
    (tmp_path / 'val').mkdir()
    np.savez(tmp_path / 'val' / 'ILSVRC2012_val_00000001.npz',
             pos=np.array([[100, 100, 4]], np.uint8),
             neg=np.zeros((0, 3), np.uint8))
    (tmp_path / 'vallabel.txt').write_text(
        'ILSVRC2012_val_00000001.JPEG 65 254 254\n')
    s = ESImageNet(str(tmp_path), split='val')[0]
    assert s['label'] == 65 and s['inputs'][3, 1, 84, 84] == 1


def test_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match='trainlabel.txt'):
        ESImageNet(str(tmp_path))
    write_es_imagenet(tmp_path, [('class1/class1_1.npz', 1, 254, 254,
                               [[10, 10, 9]], [])])
    with pytest.raises(DataError, match='class1_1.npz.*1..8'):
        ESImageNet(str(tmp_path))[0]
    np.savez(tmp_path / 'train' / 'class1' / 'class1_1.npz',
             on=np.zeros((1, 3)))
    with pytest.raises(DataError, match='pos'):
        ESImageNet(str(tmp_path))[0]
    (tmp_path / 'trainlabel.txt').write_text('a.npz 1000 254 254\n')
    with pytest.raises(DataError, match='label 1000'):
        ESImageNet(str(tmp_path))
    (tmp_path / 'trainlabel.txt').write_text('a.npz 3\n')
    with pytest.raises(DataError, match='line 1'):
        ESImageNet(str(tmp_path))
