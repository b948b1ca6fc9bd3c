"""Volume datasets, 3D transforms and the LUNA16 patch tool.

Files are written by the tests in the published layouts (MedMNIST .npz with
numpy, BIDL .npy patches, a MetaImage .mhd/.raw pair byte by byte).
"""
import importlib.util
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.dataset import default_collate

from bidl_train.datasets.synthetic.volume import make_synthetic_medmnist3d
from bidl_train.datasets.transforms.volume import (CenterCrop3D,
                                                   IntensityWindow,
                                                   RandomCrop3D,
                                                   RandomFlip3D,
                                                   RandomRot90_3D)
from bidl_train.datasets.volume import (Luna16Cls, MedMNIST3D,
                                        SyntheticMedMNIST3D, VolumeFolder)
from bidl_train.errors import DataError
from bidl_train.registry import DATASETS

from helpers.paths import REPO


def _medmnist(path, n=3, size=28):
    rng = np.random.default_rng(0)
    arrays = {}
    for split in ('train', 'val', 'test'):
        arrays[f'{split}_images'] = rng.integers(
            0, 256, (n, size, size, size), dtype=np.uint8)
        arrays[f'{split}_labels'] = np.array([[1], [0], [1]][:n],
                                             dtype=np.uint8)
    np.savez(path, **arrays)
    return arrays


def test_medmnist3d_depth_as_time(tmp_path):
    arrays = _medmnist(tmp_path / 'nodulemnist3d.npz')
    ds = MedMNIST3D(str(tmp_path), 'nodulemnist3d', 'val')
    assert ds.metainfo['classes'] == ['benign', 'malignant']
    assert len(ds) == 3
    s = ds[2]
    assert s['label'] == 1
    assert s['inputs'].shape == (28, 1, 28, 28)
    assert s['inputs'].dtype == torch.float32
    img = arrays['val_images'][2]
    # time step 5 is depth slice 5, scaled by 1/255
    assert torch.allclose(s['inputs'][5, 0],
                          torch.tensor(img[5] / 255.0, dtype=torch.float32))
    batch = default_collate([ds[0], ds[1]])
    assert batch['inputs'].shape == (2, 28, 1, 28, 28)
    assert batch['label'].tolist() == [1, 0]


def test_medmnist3d_stride_num_slices_and_3d_layout(tmp_path):
    arrays = _medmnist(tmp_path / 'organmnist3d.npz')
    ds = MedMNIST3D(str(tmp_path / 'organmnist3d.npz'), 'organmnist3d',
                    'test', slice_stride=3, num_slices=8)
    # depth 28 -> slices 0,3,...,27 (10) -> central 8: start (10-8)//2 = 1
    expected = arrays['test_images'][0][[3, 6, 9, 12, 15, 18, 21, 24]]
    got = ds[0]['inputs'][:, 0].numpy()
    np.testing.assert_allclose(got, expected / 255.0, rtol=1e-6)
    assert len(ds.metainfo['classes']) == 11
    ds3d = MedMNIST3D(str(tmp_path), 'organmnist3d', 'train', as_time=False)
    assert ds3d[0]['inputs'].shape == (1, 28, 28, 28)
    too_many = MedMNIST3D(str(tmp_path), 'organmnist3d', 'train',
                          slice_stride=4, num_slices=8)
    with pytest.raises(DataError, match='num_slices'):
        too_many[0]


def test_medmnist3d_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match='nodulemnist3d.npz'):
        MedMNIST3D(str(tmp_path), 'nodulemnist3d')
    np.savez(tmp_path / 'nodulemnist3d.npz',
             train_images=np.zeros((2, 4, 4, 4), np.uint8),
             train_labels=np.array([[0], [2]]))
    with pytest.raises(DataError, match='label 2'):
        MedMNIST3D(str(tmp_path), 'nodulemnist3d')
    with pytest.raises(DataError, match='val_images'):
        MedMNIST3D(str(tmp_path), 'nodulemnist3d', 'val')
    np.savez(tmp_path / 'mine.npz', train_images=np.zeros((1, 4, 4, 4)),
             train_labels=np.zeros((1, 1)))
    with pytest.raises(DataError, match='classes'):
        MedMNIST3D(str(tmp_path), 'mine')


def test_luna16cls_bidl_layout(tmp_path):
    split = tmp_path / 'test'
    split.mkdir()
    a = np.arange(8 * 32 * 32, dtype=np.int64).reshape(8, 32, 32) % 256
    np.save(split / '1_1.3.6.1.4_0.npy', a.astype(np.uint8))
    np.save(split / '0_1.3.6.1.4_1.npy', np.full((8, 32, 32), 7, np.uint8))
    ds = Luna16Cls(str(tmp_path), 'test')
    assert len(ds) == 2 and ds.metainfo['classes'] == ['non-nodule',
                                                       'nodule']
    # sorted file names: 0_... then 1_...
    assert ds[0]['label'] == 0 and ds[1]['label'] == 1
    x = ds[1]['inputs']
    assert x.shape == (8, 1, 32, 32)
    assert x[3, 0, 2, 5].item() == pytest.approx(((3 * 1024 + 2 * 32 + 5) %
                                                  256) / 255.0)
    np.save(split / '0_bad_2.npy', np.zeros((8, 16, 16), np.uint8))
    ds = Luna16Cls(str(tmp_path), 'test')
    with pytest.raises(DataError, match='0_bad_2.npy'):
        ds[1]
    (split / 'notes.txt').write_text('x')
    with pytest.raises(DataError, match='notes.txt'):
        Luna16Cls(str(tmp_path), 'test')
    with pytest.raises(DataError, match='train3'):
        Luna16Cls(str(tmp_path), 'train3')


def test_volume_folder_npy_and_bad_files(tmp_path):
    for cls, value in (('cyst', 1.5), ('tumour', -3.0)):
        (tmp_path / cls).mkdir()
        np.save(tmp_path / cls / 'a.npy', np.full((4, 5, 6), value,
                                                  np.float32))
    ds = VolumeFolder(str(tmp_path), pipeline=[
        dict(type='IntensityWindow', low=-4, high=4)])
    assert ds.metainfo['classes'] == ['cyst', 'tumour']
    s = ds[1]
    assert s['label'] == 1 and s['inputs'].shape == (4, 1, 5, 6)
    assert torch.allclose(s['inputs'], torch.full((4, 1, 5, 6), 1 / 8))
    (tmp_path / 'cyst' / 'b.nii.gz').write_bytes(b'not nifti')
    ds = VolumeFolder(str(tmp_path))
    with pytest.raises(DataError, match='b.nii.gz'):
        ds[1]
    (tmp_path / 'cyst' / 'c.png').write_bytes(b'')
    with pytest.raises(DataError, match='c.png'):
        VolumeFolder(str(tmp_path))


def _ramp(shape):
    return np.arange(np.prod(shape), dtype=np.float32).reshape(shape)


def test_intensity_window_hand_values():
    r = IntensityWindow(-1200, 600)(dict(inputs=np.array(
        [[[-2000.0, -1200.0, -300.0, 600.0, 1000.0]]])))
    np.testing.assert_allclose(r['inputs'][0, 0], [0, 0, 0.5, 1, 1])


def test_flip_rot_crop_keep_volume_consistent():
    vol = _ramp((4, 6, 6))
    np.random.seed(3)
    for _ in range(10):
        r = RandomFlip3D(prob=0.5)(dict(inputs=vol.copy()))
        expected = vol
        for a, flip in zip((0, 1, 2), r['flips']):
            if not flip:
                continue
            expected = expected[::-1] if a == 0 else (
                expected[:, ::-1] if a == 1 else expected[:, :, ::-1])
        np.testing.assert_array_equal(r['inputs'], expected)

        r = RandomRot90_3D()(dict(inputs=vol.copy()))
        expected = vol
        for _ in range(r['rot90_k']):  # one 90-degree turn, by hand
            expected = np.stack([s.T[::-1] for s in expected])
        np.testing.assert_array_equal(r['inputs'], expected)

        r = RandomCrop3D((2, 3, 4))(dict(inputs=vol.copy()))
        out = r['inputs']
        # locate the crop from its first voxel: ramp value -> (d, h, w)
        v = int(out[0, 0, 0])
        d, h, w = v // 36, (v // 6) % 6, v % 6
        np.testing.assert_array_equal(out, vol[d:d + 2, h:h + 3, w:w + 4])
    c = CenterCrop3D((2, 2, 2))(dict(inputs=vol))['inputs']
    np.testing.assert_array_equal(c, vol[1:3, 2:4, 2:4])
    with pytest.raises(DataError):
        CenterCrop3D(8)(dict(inputs=vol))
    with pytest.raises(DataError, match='square'):
        np.random.seed(1)
        for _ in range(20):
            RandomRot90_3D(axes=(0, 1))(dict(inputs=vol))


def test_random_crop_padding_pads_with_value():
    vol = np.ones((2, 2, 2), np.float32)
    np.random.seed(0)
    seen_pad = False
    for _ in range(20):
        r = RandomCrop3D(2, padding=1, pad_value=-5)(dict(inputs=vol))
        assert r['inputs'].shape == (2, 2, 2)
        assert set(np.unique(r['inputs'])) <= {1.0, -5.0}
        seen_pad |= bool((r['inputs'] == -5).any())
    assert seen_pad


def test_synthetic_medmnist3d_blob_class(tmp_path):
    path = make_synthetic_medmnist3d(str(tmp_path / 's.npz'), 8, 2, 2,
                                     size=20, seed=0)
    with np.load(path) as z:
        imgs, labels = z['train_images'], z['train_labels'][:, 0]
    assert imgs.shape == (8, 20, 20, 20) and imgs.dtype == np.uint8
    assert labels.tolist() == [0, 1] * 4
    # a nodule is a compact bright spot: the max exceeds any background
    peaks = imgs.reshape(8, -1).max(1)
    assert peaks[labels == 1].min() > peaks[labels == 0].max()
    ds = DATASETS.build(dict(type='SyntheticMedMNIST3D',
                             data_root=str(tmp_path), num_train=4,
                             num_val=2, num_test=2, size=16, split='val'))
    assert isinstance(ds, SyntheticMedMNIST3D)
    assert ds[0]['inputs'].shape == (16, 1, 16, 16)
    assert ds.metainfo['classes'] == ['no nodule', 'nodule']


# ----------------------------------------------------------------- LUNA16
def _load_tool():
    spec = importlib.util.spec_from_file_location(
        'prepare_luna16', osp.join(REPO, 'tools', 'prepare_luna16.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _write_mhd(path, array_zyx, spacing, origin, msb=False):
    """MetaImage by hand: text header + raw int16 bytes."""
    raw = osp.splitext(path)[0] + '.raw'
    dt = '>i2' if msb else '<i2'
    with open(raw, 'wb') as f:
        f.write(array_zyx.astype(dt).tobytes())
    z, y, x = array_zyx.shape
    header = (
        'ObjectType = Image\nNDims = 3\nBinaryData = True\n'
        f'BinaryDataByteOrderMSB = {"True" if msb else "False"}\n'
        'CompressedData = False\nTransformMatrix = 1 0 0 0 1 0 0 0 1\n'
        f'Offset = {origin[0]} {origin[1]} {origin[2]}\n'
        f'ElementSpacing = {spacing[0]} {spacing[1]} {spacing[2]}\n'
        f'DimSize = {x} {y} {z}\nElementType = MET_SHORT\n'
        f'ElementDataFile = {osp.basename(raw)}\n')
    with open(path, 'w') as f:
        f.write(header)


def test_metaimage_reader_and_patch_extraction(tmp_path):
    tool = _load_tool()
    shape = (20, 40, 40)  # z, y, x
    z, y, x = np.meshgrid(*[np.arange(n) for n in shape], indexing='ij')
    hu = (-1200 + 10 * x + 5 * y + 20 * z).astype(np.int16)
    mhd = str(tmp_path / 'scan.mhd')
    _write_mhd(mhd, hu, spacing=(1.0, 1.0, 1.0), origin=(-10.0, 5.0, 100.0),
               msb=True)
    arr, origin, spacing, direction = tool.read_metaimage(mhd)
    np.testing.assert_array_equal(arr, hu)
    np.testing.assert_allclose(origin, [-10, 5, 100])

    # candidate at voxel (z=10, y=20, x=15) in world mm (x, y, z)
    world = (-10 + 15, 5 + 20, 100 + 10)
    c = tool.world_to_voxel(world, origin, spacing, direction)
    np.testing.assert_allclose(c, [10, 20, 15])
    u8 = tool.hu_to_uint8(arr)
    patch = tool.sample_patch(u8, (1, 1, 1), c)
    # BIDL window [c - n//2, c + n//2) on every axis: z 6..13, y 4..35,
    # x -1..30, where x = -1 lies outside the scan and takes 170
    expected = np.full((8, 32, 32), 170, np.uint8)
    expected[:, :, 1:] = u8[6:14, 4:36, 0:31]  # x from -1 is outside
    np.testing.assert_array_equal(patch, expected)


def test_patch_resampling_is_linear_exact(tmp_path):
    tool = _load_tool()
    shape = (10, 40, 40)
    z, y, x = np.meshgrid(*[np.arange(n) for n in shape], indexing='ij')
    vol = (4 * z + 2 * y + x).astype(np.float32)  # linear: trilinear exact
    # source spacing 2 mm in z: a 1 mm patch steps half a voxel in z
    patch = tool.sample_patch(vol, (2.0, 1.0, 1.0), (5.0, 20.0, 20.0),
                              shape=(8, 4, 4))
    for k in range(8):
        for i in range(4):
            for j in range(4):
                zz, yy, xx = 5 + (k - 4) * 0.5, 20 + i - 2, 20 + j - 2
                assert patch[k, i, j] == round(4 * zz + 2 * yy + xx)


def test_prepare_luna16_end_to_end(tmp_path):
    tool = _load_tool()
    root = tmp_path / 'luna'
    (root / 'subset0').mkdir(parents=True)
    (root / 'CSVFILES').mkdir()
    (root / 'seg').mkdir()
    hu = np.full((16, 48, 48), -800, np.int16)
    uid = '1.2.3'
    _write_mhd(str(root / 'subset0' / f'{uid}.mhd'), hu, (1, 1, 1), (0, 0, 0))
    seg = np.zeros_like(hu)
    seg[:, :, :24] = 3  # left half is lung
    _write_mhd(str(root / 'seg' / f'{uid}.mhd'), seg, (1, 1, 1), (0, 0, 0))
    (root / 'CSVFILES' / 'candidates.csv').write_text(
        'seriesuid,coordX,coordY,coordZ,class\n'
        f'{uid},10,24,8,1\n{uid},30,24,8,0\n{uid},12,20,8,0\n'
        '9.9.9,1,1,1,1\n')
    out = tmp_path / 'out'
    tool.main([str(root), str(out), '--seg-dir', str(root / 'seg'),
               '--dilate', '2', '--max-neg-per-scan', '1',
               '--test-fraction', '0'])
    files = sorted(os.listdir(out / 'train'))
    assert len(files) == 2 and files[0].startswith('0_1.2.3_')
    assert files[1] == '1_1.2.3_0.npy'
    p = np.load(out / 'train' / files[1])
    lung = int(np.float32((-800 + 1200) / 1800) * 255)
    # patch x covers 10-16 .. 10+15 = -6..25: x<0 pad, x<=25 lung (24+2 dil)
    assert p.shape == (8, 32, 32)
    assert (p[:, :, 6:32] == lung).all()  # x 0..25 (mask dilated by 2)
    assert (p[:, :, :6] == 170).all()     # outside the scan
    ds = Luna16Cls(str(out), 'train')
    assert [ds[i]['label'] for i in range(2)] == [0, 1]


def test_volume_folder_reads_nifti_with_depth_as_time(tmp_path):
    nibabel = pytest.importorskip('nibabel')
    # NIfTI stores (x, y, z); depth slices are z, images are (y, x)
    xyz = np.arange(6 * 5 * 4, dtype=np.float32).reshape(6, 5, 4)
    for cls in ('a', 'b'):
        (tmp_path / cls).mkdir()
        nibabel.save(nibabel.Nifti1Image(xyz, np.eye(4)),
                     str(tmp_path / cls / 'scan.nii.gz'))
    ds = VolumeFolder(str(tmp_path))
    sample = ds[0]
    assert sample['inputs'].shape == (4, 1, 5, 6)
    for z in range(4):
        for y in range(5):
            for x in range(6):
                assert float(sample['inputs'][z, 0, y, x]) == xyz[x, y, z]
