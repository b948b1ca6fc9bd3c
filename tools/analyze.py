"""Complexity report of a config: ``python tools/analyze.py CONFIG [CKPT]``.

Prints parameters, ANN-equivalent MACs, SynOps (from the input firing of
every conv/linear layer on real batches of the config's test split), the
45 nm energy estimate per layer and in total, and the training memory at
the config's batch size and T (activations measured, see
:mod:`bidl_train.evaluation.complexity`). ``--random`` uses random inputs of
the config's shape instead of data (for configs whose dataset is not on
disk); the report says so. ``--json`` writes the full report.
"""
import argparse
import json
import sys

import torch

from bidl_train.cli.common import add_cfg_options, load_config
from bidl_train.deploy.samples import input_shape
from bidl_train.errors import BidlError
from bidl_train.evaluation.complexity import (count_complexity,
                                              measure_training_memory)
from bidl_train.registry import MODELS


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', nargs='?', default=None)
    parser.add_argument('--batches', type=int, default=4,
                        help='test batches to measure SynOps on')
    parser.add_argument('--random', action='store_true',
                        help='random inputs of the config shape (no data)')
    parser.add_argument('--memory-batch', type=int, default=2,
                        help='batch at which activations are measured '
                        '(>= 2: BatchNorm cannot train on one sample)')
    parser.add_argument('--json', default=None, help='write the report here')
    add_cfg_options(parser)
    args = parser.parse_args(argv)
    if args.memory_batch < 2:
        parser.error('--memory-batch must be at least 2: a BatchNorm layer '
                     'in training mode cannot normalise one sample')
    return args


def _real_batches(cfg, model, count):
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    init_default_scope(cfg.get('default_scope', 'bidl_train'))
    loader = Runner.build_dataloader(cfg.test_dataloader)
    for i, data in enumerate(loader):
        if i >= count:
            break
        yield model.data_preprocessor(data, False)['inputs']


def _random_batches(cfg, model, count, batch):
    """Random inputs of the config's shape: T from the config's
    ``num_steps`` (see :func:`bidl_train.deploy.samples.input_shape`)."""
    shape = input_shape(cfg, model)
    if len(shape) == 1:  # token ids for a text backbone
        for _ in range(count):
            yield torch.randint(0, cfg.model.backbone.vocab_size,
                                (shape[0], batch))
        return
    for _ in range(count):
        # sparse binary events, as DVS frames are after thresholding
        yield (torch.rand(shape[0], batch, *shape[1:]) < 0.1).float()


def analyze(cfg, checkpoint=None, batches=4, random=False, memory_batch=2):
    model = MODELS.build(cfg.model)
    if checkpoint:
        from bidl_train.engine.checkpoint import load_model_weights
        load_model_weights(model, checkpoint)  # a path or an http(s) URL
    model.eval()
    source = (_random_batches(cfg, model, batches,
                              cfg.test_dataloader.batch_size)
              if random else _real_batches(cfg, model, batches))
    report = count_complexity(model, source)
    if random:
        first = next(_random_batches(cfg, model, 1, memory_batch))
    else:
        first = next(_real_batches(cfg, model, 1))[:, :memory_batch]
    optim = cfg.optim_wrapper.optimizer.type
    report['memory'] = measure_training_memory(
        model, first, cfg.train_dataloader.batch_size,
        state_per_param=2 if optim in ('Adam', 'AdamW') else 1)
    report['inputs'] = 'random sparse binary inputs' if random else \
        f'{report["total"]["samples"]} samples of the test split'
    report['input_shape'] = list(first.shape[:1]) + list(first.shape[2:])
    return report


def _print(report):
    print(f'inputs: {report["inputs"]}; per sample [T, ...] = '
          f'{report["input_shape"]}')
    print(f'{"layer":40s} {"type":8s} {"in rate":>8s} {"MACs":>12s} '
          f'{"SynOps":>12s} {"energy uJ":>10s}')
    for name, rec in report['layers'].items():
        print(f'{name:40s} {rec["type"]:8s} {rec["input_rate"]:8.3f} '
              f'{rec["macs"]:12.4g} {rec["synops"]:12.4g} '
              f'{rec["energy_pj"] / 1e6:10.4g}')
    t, m = report['total'], report['memory']
    print(f'params {t["params"]:,}  MACs {t["macs"]:.4g}  SynOps '
          f'{t["synops"]:.4g}  energy {t["energy_pj"] / 1e6:.4g} uJ (ANN '
          f'{t["ann_energy_pj"] / 1e6:.4g} uJ)')
    print(f'training memory at batch {m["batch_size"]}: '
          f'{m["total"] / 2**20:.1f} MiB (activations '
          f'{m["activations"] / 2**20:.1f} MiB; {m["method"]})')


def main(argv=None):
    args = parse_args(argv)
    try:
        cfg = load_config(args.config, args.cfg_options)
        report = analyze(cfg, args.checkpoint, args.batches, args.random,
                         args.memory_batch)
    except BidlError as err:
        # exit 2 for a user mistake, as bidl-train/test/deploy
        print(f'analyze: error: {err}', file=sys.stderr)
        return 2
    _print(report)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
