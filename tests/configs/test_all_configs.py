"""Every config in the repository builds and trains one step.

For each ``configs/**/*.py`` (``_base_`` excluded): the config parses, has
only known top-level keys, points its data loaders at ``datasets/<Name>``
(task configs) and names registered dataset types; its model builds from
the registry, one forward + backward on a random batch of the config's
input shape gives logits ``[B, num_classes]`` and finite gradients.

The input shape comes from the config: T from
:func:`~bidl_train.utils.time_steps.config_num_steps` (the config's
``num_steps``, checked against its dataset and ``_input_shape``), channels
and size from the backbone (``in_channels``, ``input_size``), or from the
config's ``_input_shape = (T, C, H, W)`` hint where the backbone does not
say them. Text backbones get random token ids. Configs whose dataset or neuron type is not
registered yet are skipped with the type named.
"""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

import bidl_train.datasets  # noqa: F401  (registers the datasets)
import bidl_train.datasets.text  # noqa: F401
import bidl_train.datasets.video  # noqa: F401
import bidl_train.datasets.volume  # noqa: F401
import bidl_train.models  # noqa: F401
import bidl_train.neurons  # noqa: F401
from bidl_train.engine.runner import check_top_level_keys
from bidl_train.registry import DATASETS, LEARNING_RULES, MODELS
from bidl_train.utils.time_steps import config_num_steps

from helpers.paths import REPO as ROOT
CONFIGS = sorted(
    p for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'),
                         recursive=True)
    if '_base_' not in p.split(osp.sep))
TASK_CONFIGS = ('dvs_gesture', 'cifar10_dvs', 'n_mnist', 'dvs_mnist', 'shd',
                'jester', 'rgb_gesture', 'luna16_cls', 'medmnist3d', 'imdb')
BATCH = 2
MAX_T = 2  # the time axis is shortened: shapes do not depend on T
# Backbones ending in global pooling accept any size: test them at most at
# MAX_SIZE to keep the suite fast (32 still leaves every stage, 32x
# downsampling included, at least one pixel).
POOLED = ('ResNetLif', 'SEWResNet', 'Spikformer', 'VGGLif')
MAX_SIZE = 32


def _ids(paths):
    return [osp.relpath(p, osp.join(ROOT, 'configs')) for p in paths]


def _types(node):
    """Every ``type`` value in a nested config."""
    if isinstance(node, dict):
        if isinstance(node.get('type'), str):
            yield node['type']
        for value in node.values():
            yield from _types(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _types(value)


def _input(cfg):
    backbone = cfg.model.backbone
    hint = cfg.get('_input_shape')
    steps = config_num_steps(cfg)
    if backbone.get('vocab_size'):  # text backbones take token ids
        return torch.randint(0, backbone.vocab_size, (min(steps, MAX_T),
                                                      BATCH))
    if hint is not None:
        _, channels, height, width = hint
        if backbone.type in POOLED:
            height, width = min(height, MAX_SIZE), min(width, MAX_SIZE)
    else:
        channels = backbone.in_channels
        size = backbone.input_size
        height, width = (size, size) if isinstance(size, int) else size
    return torch.rand(min(steps, MAX_T), BATCH, channels, height, width) * 2


def _missing_types(cfg):
    missing = set()
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        kind = cfg[loader].dataset.type
        if DATASETS.get(kind) is None:
            missing.add(f'dataset type {kind!r}')
    for kind in _types(cfg.model):
        # plastic layers nest their local rule config inside the model
        if MODELS.get(kind) is None and LEARNING_RULES.get(
                kind) is None and not hasattr(torch.nn, kind):
            missing.add(f'model type {kind!r}')
    return sorted(missing)


def test_every_task_has_a_config():
    names = {osp.splitext(osp.basename(p))[0] for p in CONFIGS
             if osp.dirname(p) == osp.join(ROOT, 'configs')}
    assert set(TASK_CONFIGS) <= names


@pytest.mark.parametrize('path', CONFIGS, ids=_ids(CONFIGS))
def test_config_builds_and_trains_one_step(path):
    cfg = Config.fromfile(path)
    check_top_level_keys(cfg)
    name = osp.splitext(osp.basename(path))[0]
    if name in TASK_CONFIGS:
        for loader in ('train_dataloader', 'val_dataloader',
                       'test_dataloader'):
            root = cfg[loader].dataset.data_root
            assert root.startswith('datasets/'), (loader, root)
    missing = _missing_types(cfg)
    if missing:
        pytest.skip('not registered yet: ' + ', '.join(missing))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.train()
    x = _input(cfg)
    with torch.no_grad():  # a shape check: no graph to keep
        logits = model(x, mode='tensor')
    assert logits.shape == (BATCH, cfg.model.head.num_classes)
    labels = torch.arange(BATCH) % cfg.model.head.num_classes
    loss = model(x, dict(label=labels), mode='loss')['loss']
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads, 'no parameter received a gradient'
    assert all(torch.isfinite(g).all() for g in grads)
    # a trained readout always learns (a population vote has no weights)
    if hasattr(model.head, 'fc'):
        assert model.head.fc.weight.grad.abs().sum() > 0
