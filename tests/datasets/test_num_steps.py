"""Time steps of every dataset kind: ``metainfo['num_steps']`` is the time
dimension of the samples the dataset yields, the dataset class states the
same from its config alone (``stated_num_steps``), old key names still
work, and an old and a new key that disagree are refused in one line.

The expectation is always the sample tensor itself (``inputs.shape[0]``),
never the number the config passed.
"""
import numpy as np
import pytest
import torch

import bidl_train.datasets  # noqa: F401  (registers datasets, transforms)
import bidl_train.models  # noqa: F401  (registers the encoders)
from bidl_train.datasets.transforms import EventFrames, SpikeBins, VoxelGrid
from bidl_train.errors import ConfigError
from bidl_train.registry import DATASETS
from bidl_train.utils.time_steps import DEFAULT_NUM_STEPS
from helpers.layout_writers import write_shd

GESTURE = dict(type='SyntheticGesture', num_classes=2, split='test',
               users_train=1, users_test=1, conditions=1, cache=False)


def _check(cfg, steps_axis=0):
    """Build ``cfg``; its metainfo, its class's statement and the first
    sample's time axis agree. Returns that number of steps."""
    dataset = DATASETS.build(dict(cfg))
    inputs = torch.as_tensor(dataset[0]['inputs'])
    steps = inputs.shape[steps_axis]
    assert dataset.metainfo['num_steps'] == steps
    assert DATASETS.get(cfg['type']).stated_num_steps(cfg) == steps
    return steps


@pytest.mark.parametrize('representation', [
    dict(type='EventFrames', num_steps=3, split_by='number', size=16),
    dict(type='EventFrames', T=5, split_by='time', size=16),
    dict(type='VoxelGrid', num_steps=4, size=16),
    dict(type='TimeSurface', T=2, size=16),
], ids=['frames', 'frames-T', 'voxels', 'surfaces-T'])
def test_event_dataset_steps_are_the_representations(tmp_path,
                                                     representation):
    cfg = dict(GESTURE, data_root=str(tmp_path), representation=representation)
    given = representation.get('num_steps', representation.get('T'))
    assert _check(cfg) == given


def test_events_integrated_in_the_pipeline_and_default_representation(
        tmp_path):
    # representation=None: the pipeline's representation makes the steps
    cfg = dict(GESTURE, data_root=str(tmp_path), representation=None,
               pipeline=[dict(type='EventFrames', num_steps=6, size=16)])
    assert _check(cfg) == 6
    # nothing given: the one default
    cfg = dict(GESTURE, data_root=str(tmp_path))
    cfg.pop('cache')
    assert _check(cfg) == DEFAULT_NUM_STEPS == 16


def test_frames_of_fixed_duration_have_no_fixed_count(tmp_path):
    cfg = dict(GESTURE, data_root=str(tmp_path), representation=dict(
        type='EventFrames', num_steps=None, duration=200_000, size=16))
    dataset = DATASETS.build(dict(cfg))
    assert dataset.metainfo['num_steps'] is None
    assert DATASETS.get('SyntheticGesture').stated_num_steps(cfg) is None
    assert dataset[0]['inputs'].shape[0] >= 1


def test_wrappers_keep_the_wrapped_steps(tmp_path):
    inner = dict(GESTURE, data_root=str(tmp_path), representation=dict(
        type='EventFrames', num_steps=3, size=16))
    for wrapper in (dict(type='ShiftedDataset', dataset=inner, shift=(1, 0)),
                    dict(type='EventMixDataset', dataset=inner, prob=1.0,
                         seed=0)):
        assert _check(wrapper) == 3


def test_shd_spike_bins(tmp_path):
    pytest.importorskip('h5py')
    samples = [(np.sort(np.random.default_rng(i).uniform(0, 0.9, 50)),
                np.random.default_rng(i).integers(0, 700, 50))
               for i in range(2)]
    write_shd(tmp_path / 'shd_test.h5', samples, [0, 1])
    cfg = dict(type='SHD', data_root=str(tmp_path), split='test',
               cache=False, representation=dict(type='SpikeBins', T=7))
    assert _check(cfg) == 7
    # SHD's own default: 100 bins
    cfg.pop('representation')
    assert _check(cfg) == 100


def test_motion_text_video_and_volumes(tmp_path):
    assert _check(dict(type='SyntheticMotion', split='test', num_samples=2,
                       T=5)) == 5
    text = dict(type='SyntheticIMDB', data_root=str(tmp_path / 'imdb'),
                split='test', num_train=6, num_test=4, vocab_size=10)
    assert _check(dict(text, max_len=9)) == 9
    assert _check(dict(text, num_steps=4)) == 4
    assert _check(text) == 500  # IMDB's default, BIDL's
    csv = tmp_path / 'news.csv'
    csv.write_text('label,text\nsport,a goal\nnews,a vote today\n')
    assert _check(dict(type='TextClassificationCSV', data_root=str(csv),
                       num_steps=3)) == 3
    clips = dict(type='SyntheticJester', data_root=str(tmp_path / 'jester'),
                 split='val', num_train_per_class=1, num_val_per_class=1,
                 num_frames=6, height=16, width=16)
    assert _check(dict(clips, T=4)) == 4
    # frame differences: T frames out of T + 1
    assert _check(dict(clips, num_steps=3, representation='diff')) == 3
    volumes = dict(type='SyntheticMedMNIST3D',
                   data_root=str(tmp_path / 'med'), split='test', num_train=2,
                   num_val=2, num_test=2)
    assert _check(dict(volumes, num_slices=10)) == 10
    assert _check(dict(volumes, num_steps=6, slice_stride=2)) == 6


def test_volumes_without_a_time_axis_or_a_fixed_count(tmp_path):
    volumes = dict(type='SyntheticMedMNIST3D', data_root=str(tmp_path),
                   split='test', num_train=2, num_val=2, num_test=2)
    # as_time=False: [1, D, H, W], depth is space, not time
    cfg = dict(volumes, num_steps=8, as_time=False)
    dataset = DATASETS.build(dict(cfg))
    assert dataset[0]['inputs'].shape[:2] == (1, 8)
    assert dataset.metainfo['num_steps'] is None
    assert DATASETS.get(cfg['type']).stated_num_steps(cfg) is None
    # every slice kept: the files decide, the config states nothing
    assert DATASETS.get(cfg['type']).stated_num_steps(volumes) is None


def test_static_images_have_steps_only_once_encoded(tmp_path):
    digits = dict(type='SyntheticMNIST', data_root=str(tmp_path),
                  split='test', num_train=4, num_test=4)
    dataset = DATASETS.build(dict(digits))
    assert dataset[0]['inputs'].shape == (1, 28, 28)  # no time axis
    assert dataset.metainfo['num_steps'] is None
    encoded = dict(digits, pipeline=[dict(
        type='SpikeEncode', encoder=dict(type='RateEncoder', T=7))])
    assert _check(encoded) == 7


def test_rgb_gesture_steps_are_the_stored_clips(tmp_path):
    data = np.zeros((2, 9, 2, 8, 8), np.uint8)
    np.savez(tmp_path / 'val.npz', data=data, label=np.array([0, 3]))
    dataset = DATASETS.build(dict(type='RGBGesture', data_root=str(tmp_path),
                                  ann_file='val.npz'))
    assert dataset.metainfo['num_steps'] == dataset[0]['inputs'].shape[0]
    assert dataset[0]['inputs'].shape[0] == 9


# -- old names, new name and their conflicts ---------------------------------
@pytest.mark.parametrize('build, old', [
    (lambda: EventFrames(T=4, num_steps=5), 'T'),
    (lambda: VoxelGrid(T=4, num_steps=5), 'T'),
    (lambda: SpikeBins(T=4, num_steps=5), 'T'),
    (lambda: DATASETS.get('SyntheticMotion')(T=4, num_steps=5), 'T'),
], ids=['EventFrames', 'VoxelGrid', 'SpikeBins', 'SyntheticMotion'])
def test_old_and_new_key_disagreeing_is_one_line(build, old):
    with pytest.raises(ConfigError) as err:
        build()
    message = str(err.value)
    assert '\n' not in message
    assert f'{old}=4' in message and 'num_steps=5' in message
    assert 'give only num_steps' in message


def test_dataset_key_conflicts_name_both_keys(tmp_path):
    text = dict(type='SyntheticIMDB', data_root=str(tmp_path / 'imdb'),
                split='test', num_train=6, num_test=4, max_len=9,
                num_steps=4)
    volumes = dict(type='SyntheticMedMNIST3D',
                   data_root=str(tmp_path / 'med'), split='test', num_train=2,
                   num_val=2, num_test=2, num_slices=10, num_steps=6)
    clips = dict(type='SyntheticJester', data_root=str(tmp_path / 'jester'),
                 split='val', num_train_per_class=1, num_val_per_class=1,
                 num_frames=6, height=16, width=16, T=4, num_steps=3)
    for cfg, old in ((text, 'max_len'), (volumes, 'num_slices'),
                     (clips, 'T')):
        for ask in (lambda: DATASETS.build(dict(cfg)),
                    lambda: DATASETS.get(cfg['type']).stated_num_steps(cfg)):
            with pytest.raises(ConfigError, match=f'num_steps=.* and '
                               f'{old}=.* disagree') as err:
                ask()
            assert '\n' not in str(err.value)


def test_old_and_new_key_agreeing_is_accepted():
    assert EventFrames(T=4, num_steps=4).num_steps == 4


def test_event_cache_is_shared_by_both_spellings(tmp_path):
    """A cache built under ``T=`` is reused by the same representation
    spelt ``num_steps=`` (the cache key records the new name)."""
    rep = dict(type='EventFrames', split_by='number', size=16)
    first = DATASETS.build(dict(GESTURE, data_root=str(tmp_path), cache=True,
                                representation=dict(rep, T=3)))
    second = DATASETS.build(dict(GESTURE, data_root=str(tmp_path), cache=True,
                                 representation=dict(rep, num_steps=3)))
    assert first.reader._cache.dir == second.reader._cache.dir
    assert second[0]['inputs'].shape[0] == 3
