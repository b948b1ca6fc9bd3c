"""Non-spiking baselines on a config's own data, beside the SNN.

Examples::

    python tools/baseline.py configs/n_mnist.py
    python tools/baseline.py configs/imdb.py --epochs 4 \
        --snn-checkpoint work_dirs/imdb/epoch_4.pth
    python tools/baseline.py configs/n_mnist.py --snn-work-dir \
        work_dirs/n_mnist --cfg-options train_cfg.max_epochs=4

Trains, on the config's own datasets, loaders and data preprocessor:

* logistic regression on the flattened representation (a bag of words for
  token ids), standardised, L2 chosen on a hold-out of the training split;
* the config's model with every spiking neuron replaced by a per-step ReLU,
  trained with the config's optimizer and schedule for its epochs (or
  ``--epochs``); its logs go to ``<work-dir>/baseline_relu_ann``;

and prints their top-1 accuracy on the validation (or ``--split test``)
split beside the SNN's: a checkpoint evaluated on the same split
(``--snn-checkpoint``) or the best and last validation accuracy logged in a
work dir (``--snn-work-dir``). The report goes to ``--out`` (default
``<work-dir>/baseline.json``), where ``bidl-test`` finds it beside a
checkpoint of the work dir. See :mod:`bidl_train.evaluation.baseline`.
"""
import argparse
import copy
import json
import os
import os.path as osp
import sys

#: hooks about spikes, deployment or local learning: meaningless for the ANN
SPIKING_HOOKS = ('SpikeMonitorHook', 'DeployHook', 'ColearningHook')


def parse_args(argv=None):
    from bidl_train.cli.common import add_cfg_options, add_data_root
    parser = argparse.ArgumentParser(
        prog='baseline', description='Logistic regression and a ReLU ANN '
        'on the config\'s own data, beside the SNN')
    parser.add_argument('config')
    add_cfg_options(parser)
    add_data_root(parser)
    parser.add_argument('--epochs', type=int,
                        help='epochs of the ReLU ANN (default: the '
                        'config\'s train_cfg.max_epochs; the same as '
                        '--cfg-options train_cfg.max_epochs=N: the '
                        'schedule\'s milestones stay as configured)')
    parser.add_argument('--split', choices=('val', 'test'), default='val',
                        help='evaluate on this split (default val)')
    parser.add_argument('--baselines', nargs='+', choices=('lr', 'ann'),
                        default=['lr', 'ann'],
                        help='which baselines to run (default both)')
    parser.add_argument('--snn-checkpoint',
                        help='evaluate this SNN checkpoint on the split')
    parser.add_argument('--snn-work-dir',
                        help='read the SNN\'s best and last validation '
                        'accuracy from this work dir\'s logs')
    parser.add_argument('--work-dir', help='default: the config\'s work_dir '
                        'or work_dirs/<config stem>')
    parser.add_argument('--out', help='report JSON (default '
                        '<work-dir>/baseline.json)')
    parser.add_argument('--lr-samples', type=int,
                        help='fit the logistic regression on at most this '
                        'many training samples')
    parser.add_argument('--max-memory-gb', type=float, default=2.0,
                        help='memory the logistic regression\'s features '
                        'may take (default 2)')
    parser.add_argument('--seed', type=int, help='seed (default: the '
                        'config\'s randomness.seed, else 0)')
    return parser.parse_args(argv)


def _loader(cfg, split, seed):
    from mmengine.runner import Runner

    from bidl_train.evaluation.baseline import check_split
    return Runner.build_dataloader(copy.deepcopy(check_split(cfg, split)),
                                   seed=seed)


def logistic_regression(model, args, seed, train_loader, eval_loader):
    """Fit on the train split's representation, score on ``eval_loader``."""
    from bidl_train.evaluation import baseline as bl
    max_bytes = args.max_memory_gb * 2**30
    train = bl.extract_features(model, train_loader, limit=args.lr_samples,
                                max_bytes=max_bytes)
    test = bl.extract_features(model, eval_loader, max_bytes=max_bytes)
    if train.kind == 'tokens':
        # token ids are names, not magnitudes: count them instead
        backbone = getattr(model, 'backbone', None)
        vocab = getattr(backbone, 'vocab_size', None) or 1 + int(
            max(train.values.max(), test.values.max()))
        pad = getattr(backbone, 'pad_id', 0)
        x_train = bl.bag_of_words(train.values, vocab, pad)
        x_test = bl.bag_of_words(test.values, vocab, pad)
        described = 'bag of words'
    else:
        x_train, x_test = train.values, test.values
        described = 'flattened ' + 'x'.join(map(str, train.sample_shape))
    classes = max(2, 1 + int(max(train.labels.max(), test.labels.max())))
    print(f'baseline: logistic regression on {len(train)} samples x '
          f'{x_train.shape[1]} features ({described}), L2 chosen on a '
          'hold-out ...', flush=True)
    fitted = bl.fit_logistic_regression(x_train, train.labels, classes,
                                        seed=seed)
    result = dict(accuracy=bl.accuracy(fitted.predict(x_test), test.labels),
                  input=described, features=int(x_train.shape[1]),
                  l2=fitted.l2, train_samples=len(train))
    print(f'baseline: logistic regression {result["accuracy"]:.2f}% (L2 '
          f'{fitted.l2:g})', flush=True)
    return result, test.labels


def relu_ann(cfg, args, work_dir, eval_loader):
    """Train the config's model with ReLUs instead of neurons."""
    from bidl_train.engine import build_runner
    from bidl_train.evaluation import count_parameters
    from bidl_train.evaluation import baseline as bl
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = osp.join(work_dir, 'baseline_relu_ann')
    for key in ('deploy', 'colearning'):
        cfg.pop(key, None)
    cfg.custom_hooks = [h for h in cfg.get('custom_hooks') or []
                        if h.get('type') not in SPIKING_HOOKS]
    # no validation or checkpoints during training: it is scored once, at
    # the end, by the same loop as the other models
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.default_hooks = dict(cfg.get('default_hooks') or {}, checkpoint=None)
    cfg.load_from, cfg.resume = None, False
    print(f'baseline: training the ReLU ANN for {cfg.train_cfg.max_epochs} '
          f'epochs in {cfg.work_dir} ...', flush=True)
    runner = build_runner(cfg)
    model = runner.model
    snn_params = count_parameters(model)
    replaced = bl.relu_ann(model)
    if not replaced:
        return dict(skipped='the model has no spiking neuron to replace')
    runner.train()
    return dict(accuracy=bl.evaluate_model(model, eval_loader),
                epochs=cfg.train_cfg.max_epochs,
                replaced_neurons=len(replaced),
                parameters=count_parameters(model), snn_parameters=snn_params,
                work_dir=cfg.work_dir)


def snn_accuracy(cfg, args, eval_loader):
    """The SNN's accuracy from a checkpoint or a work dir's logs."""
    from bidl_train.errors import CheckpointError
    from bidl_train.evaluation import baseline as bl
    if args.snn_checkpoint:
        from bidl_train.engine.checkpoint import (install_safe_loader,
                                                  load_checkpoint_file)
        from bidl_train.registry import MODELS
        install_safe_loader()
        ckpt = load_checkpoint_file(args.snn_checkpoint)
        state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) \
            else None
        if not isinstance(state, dict):
            raise CheckpointError(f'{args.snn_checkpoint}: no state_dict')
        model = MODELS.build(copy.deepcopy(cfg.model))
        missing, unexpected = model.load_state_dict(
            {k.removeprefix('module.'): v for k, v in state.items()},
            strict=False)
        if missing or unexpected:
            raise CheckpointError(
                f'{args.snn_checkpoint} does not fit the config\'s model '
                f'(missing {missing[:3]}, unexpected {unexpected[:3]}); was '
                'it trained with this config?')
        return dict(accuracy=bl.evaluate_model(model, eval_loader),
                    source=f'checkpoint {args.snn_checkpoint}')
    best, last = bl.best_and_last_accuracy(args.snn_work_dir)
    return dict(accuracy=last, best=best,
                source=f'last logged val, {args.snn_work_dir}; best '
                f'{best:.2f}')


def check_snn_sources(args):
    """Refuse a bad SNN source now, not after minutes of training."""
    from bidl_train.errors import ConfigError
    if args.snn_checkpoint and args.snn_work_dir:
        raise ConfigError('give --snn-checkpoint or --snn-work-dir, not both')
    if args.snn_checkpoint:
        from bidl_train.engine.checkpoint import check_checkpoint_source
        check_checkpoint_source(args.snn_checkpoint)
    if args.snn_work_dir:
        if args.split != 'val':
            raise ConfigError('--snn-work-dir reads validation accuracy; '
                              'use --split val or give --snn-checkpoint')
        from bidl_train.evaluation.baseline import best_and_last_accuracy
        best_and_last_accuracy(args.snn_work_dir)


def run(args):
    import torch
    from mmengine.registry import init_default_scope

    from bidl_train.cli.common import load_config
    from bidl_train.errors import ConfigError
    from bidl_train.evaluation import baseline as bl
    from bidl_train.registry import MODELS
    cfg = load_config(args.config, args.cfg_options,
                      data_root=args.data_root)
    if args.epochs is not None:
        if args.epochs < 1:
            raise ConfigError(f'--epochs must be >= 1, got {args.epochs}')
        cfg.train_cfg.max_epochs = args.epochs
    check_snn_sources(args)
    seed = args.seed if args.seed is not None else (
        cfg.get('randomness') or {}).get('seed') or 0
    cfg.randomness = dict(cfg.get('randomness') or {}, seed=seed)
    work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    init_default_scope(cfg.get('default_scope', 'bidl_train'))
    torch.manual_seed(seed)
    train_loader = _loader(cfg, 'train', seed)
    eval_loader = _loader(cfg, args.split, seed)
    report = dict(config=args.config, split=args.split,
                  epochs=cfg.train_cfg.max_epochs, seed=seed)
    model = MODELS.build(copy.deepcopy(cfg.model))
    lr, labels = logistic_regression(
        model, args, seed, train_loader, eval_loader) \
        if 'lr' in args.baselines else (None, bl.loader_labels(eval_loader))
    report.update(
        eval_samples=len(labels),
        num_classes=max(2, 1 + int(labels.max())),
        majority_class=100.0 * float(labels.bincount().max()) / len(labels),
        train_samples=len(train_loader.dataset),
        logistic_regression=lr)
    report['relu_ann'] = relu_ann(cfg, args, work_dir, eval_loader) \
        if 'ann' in args.baselines else None
    if report['relu_ann'] and 'skipped' in report['relu_ann']:
        print(f'ReLU ANN skipped: {report["relu_ann"]["skipped"]}')
        report['relu_ann'] = None
    report['snn'] = snn_accuracy(cfg, args, eval_loader) if (
        args.snn_checkpoint or args.snn_work_dir) else None
    print(bl.format_table(report))
    out = args.out or osp.join(work_dir, 'baseline.json')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        json.dump(report, f, indent=2)
    print(f'report written to {out}')


def main(argv=None):
    args = parse_args(argv)
    from bidl_train.cli.common import user_errors
    with user_errors('baseline'):
        run(args)
    return 0


if __name__ == '__main__':
    sys.exit(main())
