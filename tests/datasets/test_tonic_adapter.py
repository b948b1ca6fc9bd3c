"""Tonic transforms in our pipelines (TonicTransform) and our event datasets
in Tonic code (EventDataset.as_tonic).

Tests that run Tonic itself skip without it (CI installs it, see .ci/run);
the view and the missing-package error are tested either way. Expected
values are worked out by hand in the comments.
"""
import sys

import numpy as np
import pytest
from helpers.prophesee_writers import dat_bytes

from bidl_train.cli.config_safety import check_data_config
from bidl_train.datasets.dvs import EventFolder
from bidl_train.datasets.io import EVENT_DTYPE, make_events
from bidl_train.datasets.transforms.tonic import (TONIC_DTYPE, TonicView,
                                                  from_tonic_events,
                                                  to_tonic_events)
from bidl_train.errors import ConfigError, DataError
from bidl_train.registry import TRANSFORMS

H, W = 3, 5  # not square: (H, W) vs Tonic's (W, H, P) must not mix up

# Denoise(filter_time=100) keeps an event when a 4-neighbour fired less
# than 100 us before it: only (1050, x6, y1) has one, (1000, x5, y1).
EVENTS = make_events([1000, 1050, 1060, 2000], [4, 3, 0, 3], [1, 1, 0, 1],
                     [1, 0, 1, 1])
KEPT = [(1050, 3, 1, 0)]


def _rows(events):
    return [tuple(int(v) for v in e) for e in events[['t', 'x', 'y', 'p']]]


def _build(**cfg):
    return TRANSFORMS.build(dict(type='TonicTransform', **cfg))


# -- conversion (no Tonic needed) -----------------------------------------------
def test_conversion_round_trip_and_polarity_conventions():
    tonic_events = to_tonic_events(EVENTS)
    assert tonic_events.dtype == TONIC_DTYPE
    assert tonic_events['p'].tolist() == [True, False, True, True]
    back = from_tonic_events(tonic_events)
    assert back.dtype == EVENT_DTYPE and _rows(back) == _rows(EVENTS)
    # Tonic datasets also use -1/1 polarities and float times
    other = np.zeros(3, dtype=[('x', float), ('y', float), ('t', float),
                               ('p', int)])
    other['x'], other['y'] = [1, 5, -1], [2, 0, 0]
    other['t'], other['p'] = [9.6, 10.2, 11], [-1, 1, 1]
    # inside (H, W) = (3, 5): x=5 and x=-1 are outside
    assert _rows(from_tonic_events(other, (H, W))) == [(10, 1, 2, 0)]


# -- TonicTransform -------------------------------------------------------------
def test_tonic_dtype_is_tonics():
    tonic = pytest.importorskip('tonic')
    assert TONIC_DTYPE == tonic.io.events_struct


def test_denoise_on_our_results_dict():
    pytest.importorskip('tonic')
    out = _build(name='Denoise', filter_time=100)(
        dict(events=EVENTS, sensor_size=(H, W), label=2))
    assert out['events'].dtype == EVENT_DTYPE
    assert _rows(out['events']) == KEPT and out['label'] == 2


def test_sensor_size_is_filled_in_tonics_order():
    pytest.importorskip('tonic')
    flip = _build(name='RandomFlipLR', p=1.0)
    out = flip(dict(events=EVENTS.copy(), sensor_size=(H, W)))
    # x' = W - 1 - x with W = 5
    assert out['events']['x'].tolist() == [0, 1, 4, 1]
    frames = _build(name='ToFrame', n_event_bins=2)(
        dict(events=EVENTS, sensor_size=(H, W)))['inputs']
    assert frames.dtype == np.float32 and frames.shape == (2, 2, H, W)
    # two events per frame, at [frame, p, y, x]
    assert frames[0, 1, 1, 4] == 1 and frames[0, 0, 1, 3] == 1
    assert frames[1, 1, 0, 0] == 1 and frames[1, 1, 1, 3] == 1
    assert frames.sum() == 4


def test_events_pushed_outside_the_sensor_are_removed():
    pytest.importorskip('tonic')
    np.random.seed(0)
    jitter = _build(name='SpatialJitter', var_x=50.0, var_y=50.0,
                    clip_outliers=False)
    many = make_events(np.arange(200), np.full(200, 2), np.full(200, 1),
                       np.ones(200))
    out = jitter(dict(events=many, sensor_size=(H, W)))['events']
    assert 0 < len(out) < 200  # some left the 3x5 sensor and were removed
    assert out['x'].max() < W and out['y'].max() < H


def test_a_frame_transform_receives_existing_inputs():
    pytest.importorskip('tonic')
    frames = np.zeros((4, 2, H, W), np.float32)
    frames[:, 0, 0, 0] = 1  # a pixel on in all 4 binary frames
    # ToBinaRep(n_frames=1, n_bits=4): 4 frames read as one 4-bit number,
    # 0b1111 = 15, normalised by 2**4 - 1 -> 1
    out = _build(name='ToBinaRep', n_frames=1, n_bits=4)(
        dict(inputs=frames, events=EVENTS, sensor_size=(H, W)))
    assert out['inputs'].shape == (1, 2, H, W)
    assert out['inputs'][0, 0, 0, 0] == 1 and out['inputs'].sum() == 1


@pytest.mark.parametrize('cfg, words', [
    (dict(name='tonic.transforms.Denoise'), 'dotted paths are not'),
    (dict(name='np'), 'has no transform'),
    (dict(name='functional'), 'has no transform'),
    (dict(name='Compose'), 'one TonicTransform per pipeline entry'),
    (dict(name='Denoize'), 'Did you mean Denoise'),
    (dict(name='Denoise', filter_tme=5), "filter_tme"),
    (dict(name='RandomFlipPolarity', p=2.0), 'refused its arguments'),
])
def test_bad_tonic_transform_configs_are_config_errors(cfg, words):
    pytest.importorskip('tonic')
    with pytest.raises(ConfigError, match=words):
        _build(**cfg)


def test_failure_on_a_sample_names_the_transform():
    pytest.importorskip('tonic')
    no_slicing = _build(name='ToFrame')  # no time_window, n_time_bins, ...
    with pytest.raises(ConfigError, match=r"TonicTransform\(name='ToFrame'"):
        no_slicing(dict(events=EVENTS, sensor_size=(H, W)))
    with pytest.raises(DataError, match='sensor_size'):
        _build(name='ToFrame', n_time_bins=2)(dict(events=EVENTS))


def test_without_tonic_the_error_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, 'tonic', None)
    monkeypatch.setitem(sys.modules, 'tonic.transforms', None)
    with pytest.raises(ConfigError, match='pip install --no-deps tonic'):
        _build(name='Denoise', filter_time=100)


def test_a_yaml_style_config_with_a_tonic_transform_passes_the_safety_check():
    cfg = dict(train_dataloader=dict(dataset=dict(
        type='EventFolder', data_root='x', representation=None,
        pipeline=[dict(type='TonicTransform', name='Denoise',
                       filter_time=10000),
                  dict(type='TonicTransform', name='ToFrame',
                       n_time_bins=8)])))
    check_data_config(cfg, 'tonic.yaml')  # names, no dotted imports


# -- datasets: pipeline and the Tonic-style view -------------------------------
@pytest.fixture
def folder(tmp_path):
    """EventFolder of Prophesee .dat files: class 'a' holds EVENTS, class
    'b' one event."""
    for cls, rows in (('a', _rows(EVENTS)), ('b', [(7, 1, 2, 0)])):
        (tmp_path / 'train' / cls).mkdir(parents=True)
        (tmp_path / 'train' / cls / 'rec.dat').write_bytes(
            dat_bytes(rows, W, H))
    return tmp_path


def test_tonic_transforms_in_an_event_dataset_pipeline(folder):
    pytest.importorskip('tonic')
    ds = EventFolder(folder, sensor_size=(H, W), extensions=('.dat', ),
                     representation=None, cache=False, pipeline=[
                         dict(type='TonicTransform', name='Denoise',
                              filter_time=100),
                         dict(type='TonicTransform', name='ToFrame',
                              n_event_bins=1)])
    sample = ds[0]
    assert tuple(sample['inputs'].shape) == (1, 2, H, W)
    # the one event Denoise keeps: (1050, x3, y1, OFF)
    assert sample['inputs'].sum() == 1 and sample['inputs'][0, 0, 1, 3] == 1
    assert sample['label'] == 0


def test_as_tonic_view(folder):
    ds = EventFolder(folder, sensor_size=(H, W), extensions=('.dat', ),
                     cache=False)
    view = ds.as_tonic()
    assert isinstance(view, TonicView) and len(view) == 2
    assert view.sensor_size == (W, H, 2) and view.classes == ['a', 'b']
    events, target = view[0]
    assert events.dtype == TONIC_DTYPE and target == 0
    assert [(int(e['t']), int(e['x']), int(e['y']), bool(e['p']))
            for e in events] == [(1000, 4, 1, True), (1050, 3, 1, False),
                                 (1060, 0, 0, True), (2000, 3, 1, True)]
    events, target = ds.as_tonic(transform=len,
                                 target_transform=lambda t: t + 10)[1]
    assert (events, target) == (1, 11)


def test_as_tonic_with_tonic_code(folder):
    tonic = pytest.importorskip('tonic')
    ds = EventFolder(folder, sensor_size=(H, W), extensions=('.dat', ),
                     cache=False)
    view = ds.as_tonic(transform=tonic.transforms.ToFrame(
        sensor_size=ds.as_tonic().sensor_size, n_event_bins=2))
    frames, target = view[0]
    assert frames.shape == (2, 2, H, W) and frames.sum() == 4
    assert target == 0
