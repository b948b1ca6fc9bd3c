"""build_runner refuses a top-level num_steps that the data does not make
(``--cfg-options num_steps=N`` reaches only the top-level key)."""
import os.path as osp

import pytest
from mmengine.config import Config

from bidl_train.cli.common import load_config
from bidl_train.engine.runner import _check_time_steps
from bidl_train.errors import ConfigError
from helpers.paths import REPO

DEMO = osp.join(REPO, 'configs', 'demo', 'synthetic_gesture.py')


def test_shipped_config_agrees_with_itself():
    _check_time_steps(load_config(DEMO))


def test_top_level_override_alone_is_refused_naming_both_values():
    cfg = load_config(DEMO)
    made = cfg.num_steps
    cfg.merge_from_dict({'num_steps': made + 3})  # what --cfg-options does
    with pytest.raises(ConfigError) as err:
        _check_time_steps(cfg)
    message = str(err.value)
    assert f'num_steps = {made + 3}' in message
    assert f'= {made}' in message
    assert 'representation.num_steps' in message
    assert '\n' not in message


def test_override_of_both_keys_passes():
    cfg = load_config(DEMO)
    steps = cfg.num_steps + 3
    cfg.merge_from_dict({'num_steps': steps})
    for split in ('train', 'val', 'test'):
        cfg.merge_from_dict({
            f'{split}_dataloader.dataset.representation.num_steps': steps})
    _check_time_steps(cfg)


def test_config_without_top_level_num_steps_is_not_checked():
    _check_time_steps(Config(dict(model=dict(type='X'))))
