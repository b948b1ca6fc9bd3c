"""Event and frame augmentations against hand-computed results."""
import numpy as np
import pytest

from bidl_train.datasets.io import make_events
from bidl_train.errors import DataError
from bidl_train.registry import TRANSFORMS


def results(rows, size=(4, 5)):
    t, x, y, p = zip(*rows)
    return dict(events=make_events(t, x, y, p), sensor_size=size)


ROWS = [(0, 0, 0, 1), (10, 4, 3, 0), (20, 2, 1, 1)]


def build(**cfg):
    return TRANSFORMS.build(cfg)


def test_flip_lr_and_polarity_flip():
    out = build(type='EventFlipLR', prob=1.0)(results(ROWS))
    assert out['events']['x'].tolist() == [4, 0, 2]
    out = build(type='PolarityFlip', prob=1.0)(results(ROWS))
    assert out['events']['p'].tolist() == [0, 1, 0]
    # prob 0: untouched
    out = build(type='PolarityFlip', prob=0.0)(results(ROWS))
    assert out['events']['p'].tolist() == [1, 0, 1]


def test_shift_removes_events_leaving_the_sensor():
    tf = build(type='EventShift', max_shift=3, seed=0)
    got = tf(results(ROWS))['events']
    rng = np.random.default_rng(0)
    rng.random()  # the prob draw comes first, then the shift
    dx, dy = rng.integers(-3, 4, 2)
    expected = [(t, x + dx, y + dy, p) for t, x, y, p in ROWS
                if 0 <= x + dx < 5 and 0 <= y + dy < 4]
    assert [tuple(map(int, e)) for e in got] == expected


def test_drop_ratio_and_time_scale():
    rows = [(i, i % 5, 0, 1) for i in range(10000)]
    got = build(type='EventDrop', ratio=0.25, seed=1)(results(rows))
    assert 7200 < len(got['events']) < 7800
    got = build(type='EventTimeScale', low=2.0, high=2.0)(results(
        [(100, 0, 0, 1), (110, 0, 0, 1), (150, 1, 1, 0)]))
    assert got['events']['t'].tolist() == [100, 120, 200]


def test_spatial_jitter_zero_std_is_identity():
    got = build(type='EventSpatialJitter', std=0.0)(results(ROWS))
    assert got['events']['x'].tolist() == [0, 4, 2]


def test_event_transform_needs_events():
    with pytest.raises(DataError, match='events'):
        build(type='EventDrop')(dict(inputs=np.zeros((1, 2, 2, 2))))


def test_frame_crop_pad_and_flip():
    x = np.arange(2 * 1 * 3 * 3, dtype=np.float32).reshape(2, 1, 3, 3)
    tf = build(type='RandomCropPad', padding=1, seed=3)
    i, j = np.random.default_rng(3).integers(0, 3, 2)
    padded = np.zeros((2, 1, 5, 5), np.float32)
    padded[:, :, 1:4, 1:4] = x
    out = tf(dict(inputs=x.copy()))['inputs']
    np.testing.assert_array_equal(out, padded[:, :, i:i + 3, j:j + 3])
    out = build(type='RandomFlipFrames', prob=1.0)(dict(inputs=x.copy()))
    assert out['inputs'][1, 0, 2].tolist() == [17, 16, 15]
    with pytest.raises(DataError, match='T, C, H, W'):
        build(type='RandomFlipFrames')(dict(inputs=np.zeros((3, 3))))


def test_time_jitter_resorts_and_clips_at_zero():
    rows = [(0, 0, 0, 1), (100, 1, 0, 0), (105, 2, 0, 1), (1000, 3, 0, 0)]
    same = build(type='EventTimeJitter', std=0.0)(results(rows))
    assert same['events']['t'].tolist() == [0, 100, 105, 1000]
    tf = build(type='EventTimeJitter', std=50.0, seed=7)
    got = tf(results(rows))['events']
    # replay: the prob draw, then one normal draw per event
    rng = np.random.default_rng(7)
    rng.random()
    noise = np.rint(rng.normal(0, 50.0, 4)).astype(int)
    want = sorted(((max(0, t + n), x) for (t, x, _, _), n in zip(rows, noise)),
                  key=lambda r: r[0])
    assert [(int(e['t']), int(e['x'])) for e in got] == want


def test_resize_frames_area_sum_nearest():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    x = np.concatenate([x, 2 * x])           # T = 2, same op on every frame
    blocks = np.array([[2.5, 4.5], [10.5, 12.5]])   # 2x2 block means
    out = build(type='ResizeFrames', size=2)(dict(inputs=x))['inputs']
    np.testing.assert_allclose(out[0, 0], blocks)
    np.testing.assert_allclose(out[1, 0], 2 * blocks)
    out = build(type='ResizeFrames', size=(2, 2), mode='sum')(
        dict(inputs=x))['inputs']
    np.testing.assert_allclose(out[0, 0], 4 * blocks)
    assert out.sum() == pytest.approx(x.sum())       # counts preserved
    up = build(type='ResizeFrames', size=(4, 2), mode='nearest')(
        dict(inputs=np.array([[[[1, 2]]]], np.float32)))['inputs']
    assert up[0, 0].tolist() == [[1, 2]] * 4


def test_rotate_frames_same_angle_for_all_frames():
    x = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    x = np.concatenate([x, x + 10])
    out = build(type='RandomRotateFrames', degrees=(90, 90))(
        dict(inputs=x.copy()))
    # 90 degrees counter-clockwise on screen: the top row is the old right
    # column, read top to bottom
    assert out['inputs'][0, 0].tolist() == [[2, 5, 8], [1, 4, 7], [0, 3, 6]]
    assert out['inputs'][1, 0].tolist() == [[12, 15, 18], [11, 14, 17],
                                            [10, 13, 16]]
    assert out['rotation'] == 90.0
    out = build(type='RandomRotateFrames', degrees=(180, 180))(
        dict(inputs=x.copy()))['inputs']
    assert out[0, 0].tolist() == [[8, 7, 6], [5, 4, 3], [2, 1, 0]]
    # random angle within the range, drawn from the transform's generator
    tf = build(type='RandomRotateFrames', degrees=30, seed=2)
    rng = np.random.default_rng(2)
    rng.random()
    assert tf(dict(inputs=x.copy()))['rotation'] == pytest.approx(
        rng.uniform(-30, 30))
    skip = build(type='RandomRotateFrames', prob=0.0)(dict(inputs=x.copy()))
    assert skip['rotation'] == 0.0 and np.array_equal(skip['inputs'], x)
