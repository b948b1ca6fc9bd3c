"""Config loading: Python and YAML, _base_ inheritance, --cfg-options."""
import os.path as osp

import pytest
from mmengine.config import DictAction

from bidl_train.cli.common import load_config
from bidl_train.cli.train import merge_args, parse_args
from bidl_train.engine.runner import check_top_level_keys
from bidl_train.errors import ConfigError

from helpers.paths import REPO
DEMO = osp.join(REPO, 'configs', 'demo', 'synthetic_gesture.py')


def options(*pairs):
    """Parse ``k=v`` strings exactly as the command line does."""
    action = DictAction(option_strings=[], dest='o')

    class NS:
        pass

    ns = NS()
    action(None, ns, list(pairs))
    return ns.o


def test_python_config_inherits_bases():
    cfg = load_config(DEMO)
    assert cfg.default_scope == 'bidl_train'
    assert cfg.model.type == 'SpikingClassifier'  # from _base_/models
    assert cfg.train_cfg.max_epochs == 12  # leaf overrides the schedule
    assert cfg.train_cfg.val_interval == 1  # kept from the schedule base
    assert cfg.default_hooks.logger.interval == 10  # merged into runtime


def test_cfg_options_nested_keys_and_lists():
    cfg = load_config(
        DEMO,
        options('model.backbone.channels=[8,16]', 'model.backbone.pools=[2,2]',
                'train_dataloader.dataset.representation.num_steps=4',
                'optim_wrapper.optimizer.lr=0.01'))
    assert list(cfg.model.backbone.channels) == [8, 16]
    assert cfg.train_dataloader.dataset.representation.num_steps == 4
    assert cfg.optim_wrapper.optimizer.lr == 0.01
    # untouched siblings survive the merge
    assert cfg.train_dataloader.dataset.representation.size == 32


def test_yaml_config_with_python_base(tmp_path):
    path = tmp_path / 'exp.yaml'
    path.write_text(f'_base_: [{DEMO!r}]\n'
                    'train_cfg:\n  max_epochs: 3\n'
                    'model:\n  head:\n    aggregation: last\n')
    cfg = load_config(str(path))
    assert cfg.train_cfg.max_epochs == 3
    assert cfg.model.head.aggregation == 'last'
    assert cfg.model.backbone.type == 'ConvLifNet'


def test_override_of_missing_parent_is_a_typo():
    with pytest.raises(ConfigError, match="did you mean 'model.backbone'"):
        load_config(DEMO, options('model.backbon.channels=[2]'))


def test_new_leaf_keys_are_allowed():
    cfg = load_config(DEMO, options('model.backbone.dropout=0.5'))
    assert cfg.model.backbone.dropout == 0.5


def test_unknown_top_level_key_suggests_the_known_one(tmp_path):
    cfg = load_config(DEMO)
    cfg.val_evaluater = dict()
    with pytest.raises(ConfigError, match="did you mean 'val_evaluator'"):
        check_top_level_keys(cfg)


def test_missing_config_file():
    with pytest.raises(ConfigError, match='does not exist'):
        load_config('no/such/config.py')


def test_command_line_flags_fold_into_config():
    args = parse_args([
        DEMO, '--no-validate', '--seed', '7', '--deterministic'
    ])
    cfg = merge_args(load_config(DEMO), args)
    assert cfg.work_dir == osp.join('work_dirs', 'synthetic_gesture')
    assert cfg.resume is False
    assert cfg.val_cfg is None and cfg.val_dataloader is None
    assert cfg.randomness == dict(seed=7, deterministic=True)

    args = parse_args([DEMO, '--resume', 'some/epoch_3.pth'])
    cfg = merge_args(load_config(DEMO), args)
    assert cfg.resume is True and cfg.load_from == 'some/epoch_3.pth'


def test_registries_resolve_names_without_prior_imports():
    """Importing only the registry is enough: ``locations`` does the rest."""
    import subprocess
    import sys
    code = (
        'from mmengine.registry import init_default_scope\n'
        'from bidl_train.registry import DATASETS, METRICS, MODELS, '
        'TRANSFORMS\n'
        'init_default_scope("bidl_train")\n'
        'lif = MODELS.build(dict(type="LIF", alpha=0.5))\n'
        'assert type(lif).__name__ == "LIF" and float(lif.alpha) == 0.5\n'
        'assert DATASETS.get("DVS128Gesture").__name__ == "DVS128Gesture"\n'
        'assert DATASETS.get("IMDB").__name__ == "IMDB"\n'
        'assert METRICS.build(dict(type="Accuracy", topk=1)).topk == (1,)\n'
        'assert TRANSFORMS.get("EventFrames").__name__ == "EventFrames"\n'
        'print("ok")\n')
    proc = subprocess.run([sys.executable, '-c', code], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == 'ok', proc.stderr[-2000:]


def test_yaml_config_cannot_run_code(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.yaml'
    path.write_text('model: !!python/object/apply:os.system '
                    f'["touch {marker}"]\n')
    with pytest.raises(ConfigError, match='evil.yaml'):
        load_config(str(path))
    assert not marker.exists()


def test_yaml_base_files_are_parsed_safely_too(tmp_path):
    marker = tmp_path / 'pwned'
    base = tmp_path / 'base.yaml'
    base.write_text('x: !!python/object/apply:os.system '
                    f'["touch {marker}"]\n')
    leaf = tmp_path / 'leaf.yaml'
    leaf.write_text('_base_: [base.yaml]\ny: 1\n')
    with pytest.raises(ConfigError):
        load_config(str(leaf))
    assert not marker.exists()
