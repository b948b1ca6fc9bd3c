"""Video datasets, clip sampling, frame differences and clip transforms.

Clips are written by the tests: PNG/JPEG frames with cv2, CSVs by hand, an
.avi with cv2.VideoWriter, a pickle with the standard library.
"""
import os
import os.path as osp
import pickle

import cv2
import numpy as np
import pytest
import torch
from mmengine.dataset import default_collate

from bidl_train.datasets.synthetic.video import SYNTHETIC_GESTURES
from bidl_train.datasets.transforms.video import (ColorJitterVideo,
                                                  CropPadByRatioVideo,
                                                  CutoutVideo,
                                                  NormalizeVideo,
                                                  RandomCropVideo,
                                                  RandomFlipVideo,
                                                  RandomResizedCropVideo)
from bidl_train.datasets.video import (Jester, RGBGesture, SyntheticJester,
                                       VideoFolder, frame_difference,
                                       sample_clip_indices)
from bidl_train.errors import DataError
from bidl_train.registry import DATASETS


def test_centre_sampling_hand_computed():
    # L = 37, n = 16, dt = 1.5: offsets round(k * 1.5) (half to even)
    # 0 2 3 4 6 8 9 10 12 14 15 16 18 20 21 22, span 23, start (37-23)//2
    assert sample_clip_indices(37, 16, 1.5) == [
        7, 9, 10, 11, 13, 15, 16, 17, 19, 21, 22, 23, 25, 27, 28, 29
    ]
    # stride trimmed to L / n = 10 / 4 = 2.5 -> offsets 0 2 5 8 (7.5 -> 8)
    assert sample_clip_indices(10, 4, 5.0) == [0, 2, 5, 8]
    # short video loops: 0..4, 0, 1, 2
    assert sample_clip_indices(5, 8, 1.0) == [0, 1, 2, 3, 4, 0, 1, 2]


def test_random_bell_stride_stays_in_video():
    rs = np.random.RandomState(0)
    for length in (16, 20, 37, 60):
        for _ in range(50):
            idx = sample_clip_indices(length, 16, (1.0, 2.0, 0.1), True, rs)
            assert len(idx) == 16 and 0 <= min(idx) and max(idx) < length
            steps = np.diff(idx)
            assert (steps >= 1).all() and (steps <= 3).all()


def test_frame_difference_hand_values():
    clip = np.zeros((3, 1, 2, 3), np.uint8)
    clip[1, 0, 0] = (100, 100, 100)  # grey 100
    clip[2, 0, 1] = (255, 0, 0)      # grey 0.299 * 255
    d = frame_difference(clip)
    assert d.shape == (2, 2, 1, 2)
    assert d[0, 1, 0, 0] == pytest.approx(100) and d[0, 0].sum() == 0
    assert d[1, 0, 0, 0] == pytest.approx(100)  # OFF where it went dark
    assert d[1, 1, 0, 1] == pytest.approx(0.299 * 255, rel=1e-5)
    ev = frame_difference(clip, threshold=80)
    assert ev[1, 1].tolist() == [[0.0, 0.0]]  # 76.2 < 80: no ON event
    assert ev[1, 0].tolist() == [[1.0, 0.0]]


LABELS = ['Swiping Left', 'Doing other things', 'Thumb Up']


def _jester(root, n_frames=(5, 20)):
    frames = osp.join(root, '20bn-jester-v1')
    for vid, n in zip(('11', '12'), n_frames):
        os.makedirs(osp.join(frames, vid))
        for i in range(n):
            img = np.full((10, 16, 3), 10 * i, np.uint8)  # BGR on disk
            img[..., 0] = int(vid)
            cv2.imwrite(osp.join(frames, vid, f'{i + 1:05d}.png'), img)
    with open(osp.join(root, 'jester-v1-labels.csv'), 'w') as f:
        f.write('\n'.join(LABELS) + '\n')
    with open(osp.join(root, 'jester-v1-train.csv'), 'w') as f:
        f.write('11;Thumb Up\n12;Swiping Left\n')
    with open(osp.join(root, 'jester-v1-validation.csv'), 'w') as f:
        f.write('12;Doing other things\n')


def test_jester_reader_labels_frames_layout(tmp_path):
    _jester(str(tmp_path))
    ds = Jester(str(tmp_path), 'train', T=4, test_mode=True, stride=2.0)
    # BIDL order: names sorted case-insensitively
    assert ds.metainfo['classes'] == sorted(LABELS, key=str.lower)
    assert [ds[0]['label'], ds[1]['label']] == [2, 1]
    s = ds[1]
    assert s['inputs'].shape == (4, 3, 10, 16)
    # 20 frames, dt 2: offsets 0 2 4 6, span 7, start (20-7)//2 = 6
    # frame i has value 10 * i in G and R, the id (12) in B (RGB: channel 2)
    got_g = (s['inputs'][:, 1, 0, 0] * 255).round().tolist()
    assert got_g == [60.0, 80.0, 100.0, 120.0]
    assert (s['inputs'][:, 2] * 255).round().eq(12).all()
    ds_file = Jester(str(tmp_path), 'val', T=4, class_order='file')
    assert ds_file.metainfo['classes'] == LABELS and ds_file[0]['label'] == 1
    batch = default_collate([ds[0], ds[1]])
    assert batch['inputs'].shape == (2, 4, 3, 10, 16)


def test_jester_diff_representation(tmp_path):
    _jester(str(tmp_path))
    ds = Jester(str(tmp_path), 'train', T=3, test_mode=True, stride=1.0,
                representation='diff')
    x = ds[1]['inputs']
    assert x.shape == (3, 2, 10, 16)
    # frames get brighter by 10 in G and R each step: grey +8.86, ON only
    assert torch.allclose(x[:, 1], torch.full((3, 10, 16), 0.886 * 10))
    assert x[:, 0].abs().sum() == 0


def test_jester_errors_name_the_file(tmp_path):
    _jester(str(tmp_path))
    with open(osp.join(str(tmp_path), 'jester-v1-train.csv'), 'a') as f:
        f.write('13;Waving\n')
    with pytest.raises(DataError, match=r'jester-v1-train\.csv.*line 3'):
        Jester(str(tmp_path), 'train')
    bad = osp.join(str(tmp_path), '20bn-jester-v1', '12', '00003.png')
    with open(bad, 'wb') as f:
        f.write(b'garbage')
    ds = Jester(str(tmp_path), 'val', T=20, stride=1.0)
    with pytest.raises(DataError, match='00003.png'):
        ds[0]


def test_video_folder_avi_and_frame_dirs(tmp_path):
    avi = tmp_path / 'wave' / 'a.avi'
    avi.parent.mkdir()
    w = cv2.VideoWriter(str(avi), cv2.VideoWriter_fourcc(*'MJPG'), 10,
                        (32, 24))
    for i in range(6):
        w.write(np.full((24, 32, 3), 40 * i, np.uint8))
    w.release()
    d = tmp_path / 'clap' / 'clip1'
    d.mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(str(d / f'{i}.png'), np.full((24, 32, 3), i, np.uint8))
    ds = VideoFolder(str(tmp_path), T=6, test_mode=True)
    assert ds.metainfo['classes'] == ['clap', 'wave']
    clap, wave = ds[0], ds[1]
    assert clap['label'] == 0 and wave['label'] == 1
    assert (clap['inputs'][:, 0, 0, 0] * 255).round().tolist() == [
        0, 1, 2, 0, 1, 2
    ]
    # MJPG is lossy: the frame means follow 0, 40, ..., 200 closely
    means = wave['inputs'].mean(dim=(1, 2, 3)) * 255
    assert torch.allclose(means, torch.arange(6.) * 40, atol=4)
    (tmp_path / 'clap' / 'broken.mp4').write_bytes(b'not a video')
    ds = VideoFolder(str(tmp_path), T=2)
    with pytest.raises(DataError, match='broken.mp4'):
        ds[0]
    (tmp_path / 'clap' / 'x.txt').write_text('')
    with pytest.raises(DataError, match='x.txt'):
        VideoFolder(str(tmp_path))


def test_rgbgesture_pickle_layout(tmp_path):
    data = np.arange(2 * 3 * 2 * 4 * 4).reshape(2, 3, 2, 4, 4).astype(
        np.uint8)
    with open(tmp_path / 'val.pkl', 'wb') as f:
        pickle.dump([data, np.array([4, 10])], f)
    ds = RGBGesture(str(tmp_path), 'val.pkl')
    assert len(ds) == 2 and len(ds.metainfo['classes']) == 11
    s = ds[1]
    assert s['label'] == 10 and s['inputs'].shape == (3, 2, 4, 4)
    assert torch.equal(s['inputs'], torch.from_numpy(data[1]).float())
    ds = RGBGesture(str(tmp_path), 'val.pkl', shape=(2, 2))
    assert ds[0]['inputs'].shape == (3, 2, 2, 2)

    class Evil:
        def __reduce__(self):
            return (os.getcwd, ())

    with open(tmp_path / 'evil.pkl', 'wb') as f:
        pickle.dump([Evil(), np.zeros(1)], f)
    with pytest.raises(DataError, match='evil.pkl'):
        RGBGesture(str(tmp_path), 'evil.pkl')
    with open(tmp_path / 'bad.pkl', 'wb') as f:
        pickle.dump([data, np.array([4, 11])], f)
    with pytest.raises(DataError, match='bad.pkl'):
        RGBGesture(str(tmp_path), 'bad.pkl')


def _distinct_clip(T=4, H=12, W=14):
    """Every pixel of every frame unique: value = t*1000 + y*100 + x."""
    t, y, x = np.meshgrid(np.arange(T), np.arange(H), np.arange(W),
                          indexing='ij')
    return (t * 1000 + y * 100 + x).astype(np.float32)[..., None]


def test_random_crop_is_the_same_box_in_every_frame():
    clip = _distinct_clip()
    np.random.seed(0)
    for _ in range(10):
        out = RandomCropVideo((5, 6))(dict(inputs=clip.copy()))['inputs']
        v = int(out[0, 0, 0, 0])
        y, x = (v % 1000) // 100, v % 100
        np.testing.assert_array_equal(out, clip[:, y:y + 5, x:x + 6])


def test_random_resized_crop_consistent_with_hand_slice():
    clip = np.random.RandomState(1).randint(0, 255, (3, 20, 30, 3)).astype(
        np.uint8)
    np.random.seed(2)
    r = RandomResizedCropVideo(size=(8, 8), scale=(0.2, 0.6))(
        dict(inputs=clip))
    y, x, h, w = r['crop_box']
    for t in range(3):
        expected = cv2.resize(clip[t, y:y + h, x:x + w], (8, 8),
                              interpolation=cv2.INTER_AREA if h > 8 and
                              w > 8 else cv2.INTER_LINEAR)
        np.testing.assert_array_equal(r['inputs'][t], expected)


def test_flip_cutout_jitter_apply_to_all_frames():
    clip = _distinct_clip()
    np.random.seed(0)
    r = RandomFlipVideo(prob=1.0, label_map={0: 1})(
        dict(inputs=clip, label=0))
    np.testing.assert_array_equal(r['inputs'], clip[:, :, ::-1])
    assert r['label'] == 1
    r = CutoutVideo(area=0.25, prob=1.0, fill=-1)(dict(inputs=clip))
    y, x, h, w = r['cutout_box']
    holes = r['inputs'][..., 0] == -1
    assert holes.sum() == 4 * h * w and holes[:, y:y + h, x:x + w].all()
    rgb = np.random.RandomState(0).randint(0, 256, (3, 4, 5, 3)).astype(
        np.uint8)
    r = ColorJitterVideo(brightness=0.5)(dict(inputs=rgb))
    b = r['color_factors'][0]
    expected = np.clip(np.round(rgb.astype(np.float32) * b), 0, 255)
    np.testing.assert_array_equal(r['inputs'], expected)


def test_crop_pad_by_ratio_and_normalize():
    clip = np.ones((2, 100, 176, 3), np.uint8)
    r = CropPadByRatioVideo(allowed_ratio=(1.0, 4 / 3))(dict(inputs=clip))
    # 176 / (4/3) = 132 rows needed: 32 more, 16 top and 16 bottom
    assert r['inputs'].shape == (2, 132, 176, 3) and r['pad'] == (16, 16, 0,
                                                                 0)
    assert r['inputs'][:, 16:116].min() == 1 and r['inputs'][:, :16].max() \
        == 0
    n = NormalizeVideo(mean=[1, 2, 3], std=[2, 2, 2])(dict(inputs=clip))
    np.testing.assert_allclose(n['inputs'][0, 0, 0], [0, -0.5, -1])


def test_synthetic_jester_motion_defines_class(tmp_path):
    ds = DATASETS.build(dict(type='SyntheticJester',
                             data_root=str(tmp_path / 'j'),
                             num_train_per_class=1, num_val_per_class=1,
                             num_frames=10, split='val', T=10, stride=1.0))
    assert isinstance(ds, SyntheticJester)
    assert ds.metainfo['classes'] == list(SYNTHETIC_GESTURES)
    assert len(ds) == len(SYNTHETIC_GESTURES)
    for i in range(len(ds)):
        s = ds[i]
        x = s['inputs'].mean(1)  # [T, H, W] brightness
        H, W = x.shape[1:]
        # centroid of the brightest pixels per frame
        cy, cx, area = [], [], []
        for f in x:
            m = f > 0.5  # background <= ~0.35, blob centre >= ~0.7
            ys, xs = np.nonzero(m.numpy())
            cy.append(ys.mean())
            cx.append(xs.mean())
            area.append(m.sum().item())
        name = ds.metainfo['classes'][s['label']]
        dx, dy = cx[-1] - cx[0], cy[-1] - cy[0]
        if name == 'Swiping Left':
            assert dx < -W / 4
        elif name == 'Swiping Right':
            assert dx > W / 4
        elif name == 'Swiping Up':
            assert dy < -H / 4
        elif name == 'Swiping Down':
            assert dy > H / 4
        elif name.startswith('Zooming In'):
            assert area[-1] > 3 * area[0]
        else:
            assert area[0] > 3 * area[-1]


def test_synthetic_jester_frame_size_is_an_option(tmp_path):
    root = str(tmp_path / 'j')
    ds = DATASETS.build(dict(type='SyntheticJester', data_root=root,
                             num_train_per_class=1, num_val_per_class=1,
                             num_frames=4, height=30, width=40,
                             split='val', T=4, stride=1.0))
    assert tuple(ds[0]['inputs'].shape) == (4, 3, 30, 40)
    # another size is another generator option: the folder is rewritten
    # rather than read back at the old size
    ds = DATASETS.build(dict(type='SyntheticJester', data_root=root,
                             num_train_per_class=1, num_val_per_class=1,
                             num_frames=4, height=20, width=24,
                             split='val', T=4, stride=1.0))
    assert tuple(ds[0]['inputs'].shape) == (4, 3, 20, 24)
