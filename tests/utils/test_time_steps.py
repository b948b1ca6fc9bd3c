"""bidl_train.utils.time_steps: the one name, default and reader of T."""
import pytest
import torch
from mmengine.config import Config

import bidl_train.datasets  # noqa: F401  (registers the datasets)
import bidl_train.models  # noqa: F401  (registers the encoders)
from bidl_train.errors import ConfigError
from bidl_train.registry import DATASETS, MODELS
from bidl_train.utils.time_steps import (DEFAULT_NUM_STEPS, UNSET,
                                         config_num_steps, resolve_num_steps)

MOTION = dict(type='SyntheticMotion', split='test', num_samples=2)


def test_resolve_takes_the_new_key_an_old_one_or_the_default():
    assert resolve_num_steps('X', default=16) == 16
    assert resolve_num_steps('X', 5, default=16, T=UNSET) == 5
    assert resolve_num_steps('X', UNSET, default=16, max_len=7) == 7
    assert resolve_num_steps('X', 7, num_slices=7) == 7
    # None is a value (EventFrames with a duration: as many as needed)
    assert resolve_num_steps('X', None, default=16) is None


def test_resolve_refuses_a_disagreeing_old_key_in_one_line():
    with pytest.raises(ConfigError) as err:
        resolve_num_steps('IMDB', 64, max_len=500)
    assert str(err.value) == ('IMDB: num_steps=64 and max_len=500 disagree; '
                              'max_len is the old name of num_steps, give '
                              'only num_steps')


def test_one_default():
    from bidl_train.datasets.transforms import (EventFrames, TimeSurface,
                                                VoxelGrid)
    assert DEFAULT_NUM_STEPS == 16
    for transform in (EventFrames(), VoxelGrid(), TimeSurface()):
        assert transform.num_steps == DEFAULT_NUM_STEPS


def test_encoders_take_num_steps_and_the_old_t():
    x = torch.rand(3, 4)
    for kind in ('RateEncoder', 'LatencyEncoder', 'PopulationEncoder',
                 'DirectEncoder'):
        new = MODELS.build(dict(type=kind, num_steps=5, **(
            dict(channel_dim=-1) if kind == 'PopulationEncoder' else {})))
        old = MODELS.build(dict(type=kind, T=5, **(
            dict(channel_dim=-1) if kind == 'PopulationEncoder' else {})))
        assert new.num_steps == old.num_steps == 5
        assert new(x).shape[0] == 5
        with pytest.raises(ConfigError, match='T=4 and num_steps=5|'
                           'num_steps=5 and T=4'):
            MODELS.build(dict(type=kind, T=4, num_steps=5))
    with pytest.raises(ConfigError, match='give num_steps'):
        MODELS.build(dict(type='RateEncoder'))


def _cfg(**top):
    return Config(dict(
        model=dict(backbone=dict(type='ConvLifNet')),
        val_dataloader=dict(dataset=dict(MOTION, num_steps=5)), **top))


def test_config_steps_from_each_place_that_states_them():
    # the dataset config alone (the class says which key makes the steps)
    assert config_num_steps(_cfg()) == 5
    # an old key there still works
    cfg = _cfg()
    cfg.val_dataloader.dataset = dict(MOTION, T=6)
    assert config_num_steps(cfg) == 6
    # the top-level key and the hint agreeing with it
    assert config_num_steps(_cfg(num_steps=5, _input_shape=(5, 2, 16, 16))) \
        == 5
    # a built dataset's metainfo replaces the config's statement
    dataset = DATASETS.build(dict(MOTION, num_steps=3))
    assert config_num_steps(Config(dict(num_steps=3)), dataset=dataset) == 3


def test_config_steps_disagreeing_are_refused_naming_each_place():
    with pytest.raises(ConfigError) as err:
        config_num_steps(_cfg(num_steps=8))
    message = str(err.value)
    assert '\n' not in message
    assert "the config's num_steps = 8" in message
    assert 'val_dataloader.dataset = 5' in message
    encoder = MODELS.build(dict(
        type='SpikingClassifier',
        data_preprocessor=dict(type='SpikingDataPreprocessor',
                               encoder=dict(type='RateEncoder', num_steps=4)),
        backbone=dict(type='ConvLifNet', in_channels=1, input_size=8,
                      channels=[2], pools=[2], fc=[4]),
        head=dict(type='SpikingClsHead', in_features=4, num_classes=2)))
    with pytest.raises(ConfigError, match="RateEncoder = 4"):
        config_num_steps(Config(dict(num_steps=20)), model=encoder)
    assert config_num_steps(Config(dict(num_steps=4)), model=encoder) == 4


def test_a_config_stating_no_steps_is_told_the_key_to_add():
    cfg = Config(dict(val_dataloader=dict(dataset=dict(
        type='SyntheticMNIST', data_root='x'))))
    with pytest.raises(ConfigError, match='add num_steps = T at its top '
                       'level'):
        config_num_steps(cfg)
