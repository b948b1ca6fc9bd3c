"""Frame integration, voxel grids and time surfaces vs hand-computed values."""
import numpy as np
import pytest

from bidl_train.datasets.io import make_events
from bidl_train.datasets.event_binning import (events_to_frames,
                                                 events_to_time_surface,
                                                 events_to_voxel_grid)
from bidl_train.datasets.transforms import EventFrames
from bidl_train.errors import DataError
from bidl_train.registry import TRANSFORMS

# 7 events on a 3 (H) x 4 (W) sensor: (t, x, y, p)
EVENTS = [(0, 0, 0, 1), (1, 1, 0, 0), (2, 3, 2, 1), (5, 3, 2, 1),
          (6, 2, 1, 0), (9, 0, 0, 1), (10, 1, 2, 0)]


def ev(rows):
    t, x, y, p = zip(*rows)
    return make_events(t, x, y, p)


def frames_from(groups, shape=(3, 4)):
    """Expected frames from per-frame lists of event indices (hand split)."""
    out = np.zeros((len(groups), 2) + shape, np.float32)
    for i, idx in enumerate(groups):
        for k in idx:
            _, x, y, p = EVENTS[k]
            out[i, p, y, x] += 1
    return out


def test_split_by_number():
    # N = 7, T = 3: di = 2 -> [0, 1], [2, 3], [4, 5, 6] (last runs to N)
    got = events_to_frames(ev(EVENTS), (3, 4), T=3, split_by='number')
    assert got.dtype == np.float32 and got.shape == (3, 2, 3, 4)
    np.testing.assert_array_equal(got, frames_from([[0, 1], [2, 3],
                                                    [4, 5, 6]]))


def test_split_by_time():
    # t0 = 0, t1 = 10, T = 3: dt = 3 -> [0, 3): 0,1,2; [3, 6): 5; rest: 6,9,10
    got = events_to_frames(ev(EVENTS), (3, 4), T=3, split_by='time')
    np.testing.assert_array_equal(got, frames_from([[0, 1, 2], [3],
                                                    [4, 5, 6]]))


def test_fixed_duration():
    # d = 4: index = t // 4 -> 0,0,0,1,1,2,2
    got = events_to_frames(ev(EVENTS), (3, 4), duration=4)
    np.testing.assert_array_equal(got, frames_from([[0, 1, 2], [3, 4],
                                                    [5, 6]]))
    # with T = 2 the window is [0, 8): the events at 9 and 10 lie outside
    got = events_to_frames(ev(EVENTS), (3, 4), T=2, duration=4)
    np.testing.assert_array_equal(got, frames_from([[0, 1, 2], [3, 4]]))


def test_fewer_events_than_frames_go_to_last_frame():
    got = events_to_frames(ev(EVENTS[:2]), (3, 4), T=4, split_by='number')
    np.testing.assert_array_equal(got, frames_from([[], [], [], [0, 1]]))


def test_downsampling_integer_scaling():
    # 4x4 sensor -> 2x2: x' = x * 2 // 4
    e = ev([(0, 0, 0, 1), (1, 1, 1, 1), (2, 2, 3, 0), (3, 3, 0, 1)])
    got = events_to_frames(e, (4, 4), T=1, size=2)
    want = np.zeros((1, 2, 2, 2), np.float32)
    want[0, 1, 0, 0] = 2  # (0,0) and (1,1)
    want[0, 0, 1, 1] = 1  # x=2,y=3 -> (1,1)
    want[0, 1, 0, 1] = 1  # x=3,y=0 -> x'=1,y'=0
    np.testing.assert_array_equal(got, want)


def reference_segments(t, T, split_by):
    """SpikingJelly-style segment bounds, written as a plain loop."""
    n = len(t)
    bounds = []
    if split_by == 'number':
        di = n // T
        bounds = [[i * di, i * di + di] for i in range(T)]
    else:
        dt = (t[-1] - t[0]) // T
        for i in range(T):
            lo, hi = t[0] + i * dt, t[0] + (i + 1) * dt
            inside = [j for j in range(n) if lo <= t[j] < hi]
            bounds.append([inside[0], inside[-1] + 1] if inside else [0, 0])
    bounds[-1][1] = n
    if split_by == 'time':
        # the last segment starts at its own left edge
        lo = t[0] + (T - 1) * ((t[-1] - t[0]) // T)
        bounds[-1][0] = next(j for j in range(n) if t[j] >= lo)
    return bounds


@pytest.mark.parametrize('split_by', ['number', 'time'])
@pytest.mark.parametrize('seed', range(5))
def test_matches_reference_loop(split_by, seed):
    rng = np.random.default_rng(seed)
    n, T, H, W = int(rng.integers(20, 200)), int(rng.integers(1, 9)), 5, 6
    t = np.sort(rng.integers(0, 10000, n))
    x, y, p = rng.integers(0, W, n), rng.integers(0, H, n), rng.integers(0, 2, n)
    want = np.zeros((T, 2, H, W), np.float32)
    for i, (a, b) in enumerate(reference_segments(t.tolist(), T, split_by)):
        for j in range(a, b):
            want[i, p[j], y[j], x[j]] += 1
    got = events_to_frames(make_events(t, x, y, p), (H, W), T, split_by)
    np.testing.assert_array_equal(got, want)


def test_out_of_range_coordinates_raise():
    with pytest.raises(DataError, match='sensor_size'):
        events_to_frames(ev([(0, 4, 0, 1)]), (3, 4), T=1)
    with pytest.raises(DataError, match='polarit'):
        events_to_frames(ev([(0, 0, 0, 2)]), (3, 4), T=1)
    with pytest.raises(DataError, match='split_by'):
        events_to_frames(ev(EVENTS), (3, 4), T=2, split_by='bogus')


def test_voxel_grid_bilinear_in_time():
    # t0 = 0, t1 = 10, T = 3: tau = 2 * t / 10
    e = ev([(0, 0, 0, 1), (5, 1, 0, 1), (7, 1, 0, 0), (10, 0, 0, 1)])
    got = events_to_voxel_grid(e, (1, 2), T=3)
    want = np.zeros((3, 2, 1, 2), np.float32)
    want[0, 1, 0, 0] += 1.0             # tau 0
    want[1, 1, 0, 1] += 1.0             # tau 1
    want[1, 0, 0, 1] += 0.6             # tau 1.4 -> 0.6 / 0.4
    want[2, 0, 0, 1] += 0.4
    want[2, 1, 0, 0] += 1.0             # tau 2
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_time_surface_hand_values():
    # T = 2 by time: dt = 5 -> frame 0: t 0, 2; frame 1: t 9, 10
    e = ev([(0, 0, 0, 1), (2, 1, 0, 0), (9, 1, 0, 0), (10, 0, 0, 0)])
    got = events_to_time_surface(e, (1, 2), T=2, tau=4.0)
    want = np.zeros((2, 2, 1, 2), np.float32)
    want[0, 1, 0, 0] = np.exp(-2 / 4)   # ON at x0, t 0; frame end 2
    want[0, 0, 0, 1] = 1.0              # OFF at x1, t 2
    want[1, 1, 0, 0] = np.exp(-10 / 4)  # frame end 10
    want[1, 0, 0, 1] = np.exp(-1 / 4)   # OFF x1 last at 9
    want[1, 0, 0, 0] = 1.0              # OFF x0 at 10
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_event_frames_transform_from_registry():
    tf = TRANSFORMS.build(dict(type='EventFrames', T=3, split_by='number'))
    assert isinstance(tf, EventFrames)
    out = tf(dict(events=ev(EVENTS), sensor_size=(3, 4), label=1))
    np.testing.assert_array_equal(out['inputs'],
                                  frames_from([[0, 1], [2, 3], [4, 5, 6]]))
    with pytest.raises(DataError, match='sensor_size'):
        EventFrames(T=2)(dict(events=ev(EVENTS)))


def test_spike_bins_fixed_window_hand_counts():
    from bidl_train.datasets.event_binning import events_to_spike_bins
    # t (us), channel: bins of 250 us over [0, 1000)
    ev = make_events([0, 249, 250, 999, 1000, 600, 600],
                     [2, 2, 0, 1, 1, 3, 3], [0] * 7, [1] * 7)
    got = events_to_spike_bins(ev, 4, T=4, window=1000)
    want = np.zeros((4, 4), np.float32)
    want[0, 2] = 2       # t = 0 and 249
    want[1, 0] = 1       # t = 250
    want[3, 1] = 1       # t = 999; t = 1000 is outside the window
    want[2, 3] = 2       # two spikes at 600
    np.testing.assert_array_equal(got, want)
    binary = events_to_spike_bins(ev, 4, T=4, window=1000, binary=True)
    assert binary[0, 2] == 1 and binary[2, 3] == 1
    with pytest.raises(DataError, match='channels'):
        events_to_spike_bins(ev, 3, T=4, window=1000)
