"""``--cfg-options num_steps=N`` alone is refused: config variables are
filled in when the file is read, so it would reach only the top-level key
and training would silently keep the old T."""
import os.path as osp

import pytest

from bidl_train.cli.common import load_config
from bidl_train.errors import ConfigError
from helpers.paths import REPO

DEMO = osp.join(REPO, 'configs', 'demo', 'synthetic_gesture.py')


def test_top_level_override_alone_is_refused_naming_both_values():
    made = load_config(DEMO).num_steps
    with pytest.raises(ConfigError) as err:
        load_config(DEMO, {'num_steps': made + 3})
    message = str(err.value)
    assert f'num_steps = {made + 3}' in message
    assert f'= {made}' in message
    assert 'representation.num_steps' in message
    assert '\n' not in message


def test_override_of_both_keys_passes():
    steps = load_config(DEMO).num_steps + 3
    options = {'num_steps': steps}
    for split in ('train', 'val', 'test'):
        options[f'{split}_dataloader.dataset.representation.num_steps'] = steps
    cfg = load_config(DEMO, options)
    assert cfg.val_dataloader.dataset.representation.num_steps == steps


def test_other_overrides_are_not_checked():
    # a representation override alone is the user's choice of training T
    cfg = load_config(
        DEMO, {'train_dataloader.dataset.representation.num_steps': 4})
    assert cfg.train_dataloader.dataset.representation.num_steps == 4
