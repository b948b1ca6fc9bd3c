"""DVS emulator against hand-checkable pixel histories."""
import importlib.util
import math
import os

import cv2
import numpy as np
import pytest

from bidl_train.datasets.emulator import (emulate_events, saccade_frames,
                                          to_gray)
from bidl_train.datasets.io import read_events
from bidl_train.errors import DataError
from bidl_train.registry import TRANSFORMS

C = 0.2
EPS = 1e-3


def brighten(i0, k, c=C):
    """Intensity exactly k thresholds (in log(I + eps)) above i0."""
    return math.exp(math.log(i0 + EPS) + k * c) - EPS


def rows(events):
    return [tuple(int(v) for v in e) for e in events[['t', 'x', 'y', 'p']]]


def test_k_thresholds_give_k_events_at_interpolated_times():
    frames = np.full((2, 3, 4), 0.3)
    frames[1, 2, 1] = brighten(0.3, 3)     # pixel (x=1, y=2): +3 thresholds
    frames[1, 0, 3] = brighten(0.3, -2)    # pixel (x=3, y=0): -2 thresholds
    ev = emulate_events(frames, [0, 6000], C, C, log_eps=EPS)
    # ON crossings at 1/3, 2/3, 3/3 of the interval; OFF at 1/2, 2/2
    assert sorted(rows(ev)) == [(2000, 1, 2, 1), (3000, 3, 0, 0),
                                (4000, 1, 2, 1), (6000, 1, 2, 1),
                                (6000, 3, 0, 0)]
    assert np.all(np.diff(ev['t']) >= 0)


def test_reference_carries_over_and_thresholds_are_separate():
    # ON threshold 0.2, OFF threshold 0.5; the pixel goes +0.3 then -0.3
    frames = np.full((3, 1, 1), 0.3)
    frames[1] = brighten(0.3, 0.3, 1.0)
    frames[2] = 0.3
    ev = emulate_events(frames, [0, 1000, 2000], 0.2, 0.5, log_eps=EPS)
    # +0.3: one ON at 0.2/0.3 of the first interval, reference +0.2;
    # back to 0: -0.2 from the reference, under the 0.5 OFF threshold
    assert rows(ev) == [(667, 0, 0, 1)]
    # a +0.5 rise crosses the 0.2 ON threshold twice
    frames[1] = brighten(0.3, 0.5, 1.0)
    ev = emulate_events(frames, [0, 1000, 2000], 0.2, 0.5, log_eps=EPS)
    # ON at 0.2/0.5 and 0.4/0.5 of [0, 1000]; reference ends at +0.4; the
    # fall to 0 (-0.4 from the reference) stays under 0.5: no OFF
    assert rows(ev) == [(400, 0, 0, 1), (800, 0, 0, 1)]


def test_refractory_period_suppresses_events():
    frames = np.full((3, 1, 2), 0.3)
    frames[1, 0, 0] = brighten(0.3, 4)     # 4 crossings, 250 us apart
    frames[2, 0, 0] = brighten(0.3, 5)     # one more at t = 1000 + 1000
    frames[1:, 0, 1] = brighten(0.3, 4)    # same history, no refractory
    frames[2, 0, 1] = brighten(0.3, 5)
    times = [0, 1000, 2000]
    free = emulate_events(frames[:, :, 1:], times, C, C, log_eps=EPS)
    assert free['t'].tolist() == [250, 500, 750, 1000, 2000]
    ev = emulate_events(frames[:, :, :1], times, C, C, refractory=600,
                        log_eps=EPS)
    # 250 fires; 500 (250 after) and 750 (500 after) fall in the 600 us
    # refractory period; 1000 (750 after) fires; 2000 fires
    assert ev['t'].tolist() == [250, 1000, 2000]
    # suppressed crossings are lost, not emitted later: the reference moved
    ev = emulate_events(frames[:, :, :1], times, C, C, refractory=5000,
                        log_eps=EPS)
    assert ev['t'].tolist() == [250]


def test_static_image_gives_no_events_without_noise():
    img = np.random.default_rng(0).random((16, 16))
    clip = np.repeat(img[None], 10, axis=0)
    assert len(emulate_events(clip, np.arange(10) * 1000.0)) == 0
    # saccades: a black image stays silent; a dot is seen only along its
    # path (canvas position 4 + (0..2, 0..2) for amplitude 2, pad 2)
    frames, times = saccade_frames(np.zeros((5, 5)), amplitude=2.0)
    assert len(emulate_events(frames, times)) == 0
    dot = np.zeros((5, 5))
    dot[2, 2] = 1.0
    frames, times = saccade_frames(dot, amplitude=2.0)
    ev = emulate_events(frames, times)
    assert len(ev) > 0
    assert set(ev['x'].tolist()) <= {4, 5, 6}
    assert set(ev['y'].tolist()) <= {4, 5, 6}


def test_shot_noise_and_mismatch_are_seeded_and_scaled():
    clip = np.full((11, 10, 10), 0.5)
    times = np.arange(11) * 100_000.0          # 1 s in all
    a = emulate_events(clip, times, shot_noise_rate=5.0, seed=3)
    b = emulate_events(clip, times, shot_noise_rate=5.0, seed=3)
    assert rows(a) == rows(b)
    # 5 Hz x 100 pixels x 1 s = 500 expected, Poisson sd ~22
    assert 400 < len(a) < 600
    assert 0.4 < a['p'].mean() < 0.6 and np.all(np.diff(a['t']) >= 0)
    ramp = np.linspace(0.1, 0.9, 5)[:, None, None] * np.ones((5, 20, 20))
    same = emulate_events(ramp, np.arange(5) * 1000.0)
    # identical pixels fire identically without mismatch
    per_pixel = np.bincount(same['y'].astype(int) * 20 + same['x'],
                            minlength=400)
    assert len(set(per_pixel.tolist())) == 1
    mism = emulate_events(ramp, np.arange(5) * 1000.0, threshold_sigma=0.3,
                          seed=1)
    per_pixel = np.bincount(mism['y'].astype(int) * 20 + mism['x'],
                            minlength=400)
    assert len(set(per_pixel.tolist())) > 1


def test_saccade_path_and_timing():
    img = np.zeros((5, 5))
    img[2, 2] = 1.0
    frames, times = saccade_frames(img, amplitude=2.0, steps=2,
                                   saccade_us=1000, pad=2)
    assert frames.shape == (7, 9, 9)
    assert times.tolist() == [0, 500, 1000, 1500, 2000, 2500, 3000]
    # triangle (0,0) -> (1,2) -> (2,0) -> (0,0): the dot (canvas 4,4) sits
    # at these (x, y) at the saccade corners
    for i, (x, y) in zip((0, 2, 4, 6), ((4, 4), (5, 6), (6, 4), (4, 4))):
        assert frames[i, y, x] == pytest.approx(1.0)
        assert frames[i].sum() == pytest.approx(1.0)
    # half-way along the first saccade: shift (0.5, 1) splits the dot
    assert frames[1, 5, 4] == pytest.approx(0.5)
    assert frames[1, 5, 5] == pytest.approx(0.5)


def test_to_gray_layouts():
    bgr = np.zeros((2, 5, 4, 3), np.uint8)
    bgr[..., 2] = 255                      # pure red
    assert to_gray(bgr)[0, 0, 0] == pytest.approx(0.299)
    chw = np.moveaxis(bgr, -1, 1)
    np.testing.assert_allclose(to_gray(chw), to_gray(bgr))
    with pytest.raises(DataError, match='timestamps'):
        emulate_events(np.zeros((3, 2, 2)), [0, 1])


def test_transform_on_clip_and_on_still_image():
    clip = np.full((3, 4, 5, 3), 0.3)
    clip[2, 1, 1] = brighten(0.3, 2)
    tf = TRANSFORMS.build(dict(type='DVSEmulator', fps=1000.0, seed=0))
    out = tf(dict(inputs=clip, label=4))
    assert out['sensor_size'] == (4, 5) and 'inputs' not in out
    # the change happens between frame 1 (1000 us) and frame 2 (2000 us)
    assert rows(out['events']) == [(1500, 1, 1, 1), (2000, 1, 1, 1)]
    frames = TRANSFORMS.build(dict(type='EventFrames', T=1))(out)['inputs']
    assert frames.shape == (1, 2, 4, 5) and frames.sum() == 2

    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    tf = TRANSFORMS.build(dict(type='DVSEmulator',
                               saccades=dict(amplitude=3.0, steps=10)))
    out = tf(dict(inputs=digit, label=1))
    assert out['sensor_size'] == (34, 34)      # 28 + 2 * ceil(3)
    ev = out['events']
    assert len(ev) > 100 and set(np.unique(ev['p'])) == {0, 1}
    assert ev['t'].max() <= 300_000


def test_convert_video_tool(tmp_path):
    path = str(tmp_path / 'clip.avi')
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'MJPG'), 25.0,
                             (32, 24))
    if not writer.isOpened():
        pytest.skip('this OpenCV build cannot write MJPG .avi')
    for i in range(6):                      # a bright bar moving right
        frame = np.zeros((24, 32, 3), np.uint8)
        frame[:, 4 + 4 * i:8 + 4 * i] = 255
        writer.write(frame)
    writer.release()
    tool = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        'tools', 'convert_video_to_events.py')
    spec = importlib.util.spec_from_file_location('convert_tool', tool)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)   # in-process: no second torch import
    assert module.main([path, str(tmp_path / 'x.mp3')]) == 1
    for out in ('ev.aedat', 'ev.npy'):
        assert module.main([path, str(tmp_path / out), '--threshold',
                            '0.3']) == 0
        ev = read_events(tmp_path / out)
        assert len(ev) > 50
        assert ev['x'].max() < 32 and ev['y'].max() < 24
        assert ev['t'].min() > 0 and ev['t'].max() <= 200_000  # 5 x 40 ms
        # the bar moves right: ON events' mean x grows over time
        on = ev[ev['p'] == 1]
        half = on['t'] < np.median(on['t'])
        assert on['x'][half].mean() < on['x'][~half].mean()
