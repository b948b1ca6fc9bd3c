"""Every task config trains one step on its own data pipeline.

tests/configs/test_all_configs.py feeds each model random tensors; this file runs
what a user runs: for every top-level task config (configs/*.py) it writes a
tiny dataset in that dataset's official on-disk layout (shared/FORMATS.md),
points the config's loaders at it the way ``--cfg-options
train_dataloader.dataset.data_root=...`` does, builds the train / val /
test datasets from the registry, collates samples with the loader's own
``collate_fn`` and runs the model exactly as mmengine's loops do:
``train_step`` (data preprocessor, loss, backward, optimizer step) on a
training batch, then ``val_step`` ('predict') in eval mode on a val batch,
whose predictions go through the config's own ``val_evaluator``.

It catches what random tensors cannot: key names between a dataset and its
transforms, representation shapes that do not fit the model, dtypes, batches
the collate cannot stack, a val pipeline producing another shape than the
training one, a dataset refusing its own layout.

Every config runs with its own values (T, sizes, pipelines); the only
override (OVERRIDES) keeps a cache from filling the disk.
"""
import glob
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.optim import build_optim_wrapper
from mmengine.registry import FUNCTIONS

import bidl_train.datasets  # noqa: F401  (registers the datasets)
import bidl_train.datasets.text  # noqa: F401
import bidl_train.datasets.video  # noqa: F401
import bidl_train.datasets.volume  # noqa: F401
import bidl_train.models  # noqa: F401
from bidl_train.cli.common import load_config
from bidl_train.registry import DATASETS, METRICS, MODELS
from bidl_train.utils.time_steps import config_num_steps
from helpers.paths import REPO as ROOT
from helpers.task_data import (write_cifar10_dvs, write_dvs_gesture,
                               write_dvs_mnist, write_es_imagenet_release,
                               write_imdb, write_jester, write_luna16,
                               write_medmnist3d, write_mnist, write_n_mnist,
                               write_rgb_gesture, write_shd_files)

LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
BATCH = 2


# -- per task: writer, overrides, expected sample shape ----------------------

TASKS = {
    'cifar10_dvs': (write_cifar10_dvs, (10, 2, 128, 128)),
    'dvs_gesture': (write_dvs_gesture, (60, 2, 40, 40)),
    'dvs_mnist': (write_dvs_mnist, (20, 2, 40, 40)),
    'es_imagenet': (write_es_imagenet_release, (8, 2, 224, 224)),
    'imdb': (write_imdb, (500, )),
    'jester': (write_jester, (16, 3, 112, 112)),
    'luna16_cls': (write_luna16, (8, 1, 32, 32)),
    'medmnist3d': (write_medmnist3d, (28, 1, 28, 28)),
    'mnist_latency': (write_mnist, (1, 28, 28)),
    'mnist_population': (write_mnist, (1, 28, 28)),
    'mnist_rate': (write_mnist, (1, 28, 28)),
    'n_mnist': (write_n_mnist, (10, 2, 34, 34)),
    'rgb_gesture': (write_rgb_gesture, (60, 2, 40, 40)),
    'shd': (write_shd_files, (100, 2, 1, 700)),
}

OVERRIDES = {
    # The 1000 test recordings of the shipped split would cache 1.3 GB of
    # 128x128 frames; read them uncached (the training split is cached).
    'cifar10_dvs': {'val_dataloader.dataset.cache': False,
                    'test_dataloader.dataset.cache': False},
}


def task_configs():
    """The top-level configs (configs/demo, zoo, neurosim are not tasks)."""
    return sorted(osp.splitext(osp.basename(p))[0]
                  for p in glob.glob(osp.join(ROOT, 'configs', '*.py')))


def test_every_task_config_has_a_dataset_here():
    assert task_configs() == sorted(TASKS)


def _load(name, data_root):
    options = {f'{loader}.dataset.data_root': str(data_root)
               for loader in LOADERS}
    options.update(OVERRIDES.get(name, {}))
    return load_config(osp.join(ROOT, 'configs', f'{name}.py'), options)


def _batch(cfg, loader, dataset, n=BATCH):
    """``n`` samples collated by the loader's ``collate_fn``; a small
    dataset is read again (random transforms draw anew each time)."""
    collate = FUNCTIONS.get(cfg[loader].collate_fn.type)
    return collate([dataset[i % len(dataset)] for i in range(n)])


def _check_inputs(batch, shape, name):
    inputs = batch['inputs']
    assert tuple(inputs.shape[1:]) == shape, name
    if name == 'imdb':  # token ids
        assert inputs.dtype == torch.int64
    else:
        assert inputs.dtype == torch.float32
        assert torch.isfinite(inputs).all()
    assert batch['label'].dtype == torch.int64
    assert batch['label'].shape == inputs.shape[:1]


def _check_num_steps(cfg, datasets, model, batch):
    """The config's ``num_steps`` is the time axis the model receives, and
    every dataset reports its samples' own (None: no time axis yet, the
    model's encoder makes the steps)."""
    steps = model.data_preprocessor(batch, False)['inputs'].shape[0]
    assert cfg.num_steps == steps
    assert config_num_steps(cfg, datasets['val_dataloader'], model) == steps
    for dataset in datasets.values():
        sample = dataset[0]['inputs']
        expected = None if sample.dim() == 3 else sample.shape[0]
        assert dataset.metainfo['num_steps'] == expected


@pytest.mark.parametrize('name', sorted(TASKS))
def test_task_config_trains_on_its_data_layout(name, tmp_path):
    if name == 'shd':  # SHD is HDF5: the optional [events] extra
        pytest.importorskip('h5py')
    writer, shape = TASKS[name]
    data_root = writer(tmp_path / 'data')
    cfg = _load(name, data_root)
    np.random.seed(0)  # random clip sampling and augmentation
    datasets = {loader: DATASETS.build(cfg[loader].dataset)
                for loader in LOADERS}
    for loader, dataset in datasets.items():
        assert len(dataset) >= BATCH, loader
    # several draws of the random training transforms stack into one
    # batch, and val and test give what the model was trained on
    for loader in LOADERS:
        _check_inputs(_batch(cfg, loader, datasets[loader], n=6), shape,
                      name)
    train = _batch(cfg, 'train_dataloader', datasets['train_dataloader'])

    # one optimizer step as mmengine's train loop runs it
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    # the step clears the gradients: catch the input layer's on the way
    first = next(model.backbone.parameters())
    grads = []
    first.register_hook(grads.append)
    log_vars = model.train_step(train, optim_wrapper)
    assert torch.isfinite(log_vars['loss']), log_vars
    assert len(grads) == 1 and torch.isfinite(grads[0]).all()
    assert grads[0].abs().sum() > 0, 'no gradient reached the input layer'
    assert all(torch.isfinite(p).all() for p in model.parameters())

    # one validation step as mmengine's val loop runs it
    val = _batch(cfg, 'val_dataloader', datasets['val_dataloader'])
    _check_num_steps(cfg, datasets, model, val)
    model.eval()
    with torch.no_grad():
        results = model.val_step(val)
    num_classes = cfg.model.head.num_classes
    assert len(results) == BATCH
    for result, label in zip(results, val['label'].tolist()):
        assert result['pred_score'].shape == (max(num_classes, 2), )
        assert torch.isfinite(result['pred_score']).all()
        assert result['gt_label'] == label

    # the config's metrics on those predictions, as the val loop reduces them
    evaluator = Evaluator([METRICS.build(m) for m in cfg.val_evaluator])
    evaluator.dataset_meta = datasets['val_dataloader'].metainfo
    evaluator.process(data_samples=results, data_batch=val)
    metrics = evaluator.evaluate(BATCH)
    assert 0 <= metrics['accuracy/top1'] <= 100


def test_n_mnist_config_trains_and_tests_through_the_cli(tmp_path):
    """The whole path a user takes: bidl-train on configs/n_mnist.py as
    shipped, only data_root and the epoch count overridden, then bidl-test
    on the checkpoint it wrote."""
    from helpers.commands import run_here
    data_root = write_n_mnist(tmp_path / 'data')
    work = tmp_path / 'work'

    def run(*args):
        # the tool scripts in this process: a new Python each would cost
        # more than the tiny run (see test_commands.run_here)
        run_here(list(args), tmp_path)

    roots = [f'{loader}.dataset.data_root={data_root}' for loader in LOADERS]
    run(osp.join(ROOT, 'tools', 'train.py'),
        osp.join(ROOT, 'configs', 'n_mnist.py'), '--work-dir', str(work),
        '--cfg-options', 'train_cfg.max_epochs=1', *roots)
    assert (work / 'epoch_1.pth').is_file()
    out = tmp_path / 'metrics.json'
    run(osp.join(ROOT, 'tools', 'test.py'),
        osp.join(ROOT, 'configs', 'n_mnist.py'), str(work / 'epoch_1.pth'),
        '--work-dir', str(work), '--out', str(out), '--cfg-options', *roots)
    metrics = json.loads(out.read_text())['metrics']
    # every one of the 10 test recordings counted once
    assert sum(map(sum, metrics['confusion_matrix'])) == 10
    assert 0 <= metrics['accuracy/top1'] <= 100
