"""``bidl-test CONFIG CHECKPOINT``: evaluate a checkpoint on the test split.

Besides printing the metrics and writing them as JSON, it writes a report
folder (``--report-dir``, default ``<work-dir>/test_report``) with the
per-class accuracy and confusion matrix as CSV and PNG and the per-layer
firing rates, and with ``--show-dir DIR`` raster plots of the misclassified
samples.
"""
import argparse
import json
import math
import os
import os.path as osp
import sys

from bidl_train.errors import ConfigError

from .common import add_cfg_options, load_config, user_errors


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog='bidl-test', description='Evaluate a trained checkpoint')
    parser.add_argument('config', help='config file (.py or .yaml)')
    parser.add_argument('checkpoint', help='checkpoint file (.pth)')
    parser.add_argument(
        '--work-dir',
        help='where the test log goes (default work_dirs/<config stem>)')
    parser.add_argument(
        '--out',
        help='write all metrics as JSON here (default '
        '<work-dir>/test_metrics.json)')
    parser.add_argument(
        '--report-dir',
        help='per-class accuracy, confusion matrix and firing rates as CSV '
        'and PNG go here (default <work-dir>/test_report)')
    parser.add_argument(
        '--show-dir',
        help='save spike raster plots of misclassified samples here')
    parser.add_argument(
        '--show-max', type=int, default=50,
        help='at most this many raster plots with --show-dir (default 50)')
    add_cfg_options(parser)
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none')
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0,
                        help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def format_metrics(metrics, class_names=None):
    """A readable multi-line summary of the metric dict."""
    lines = []
    scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    width = max((len(k) for k in scalars), default=0)
    for key, value in scalars.items():
        lines.append(f'{key:<{width}}  {value:.4f}')
    per_class = metrics.get('per_class_accuracy')
    if per_class:
        lines.append('per-class accuracy (%):')
        for i, acc in enumerate(per_class):
            name = class_names[i] if class_names and i < len(
                class_names) else str(i)
            shown = 'n/a (no sample)' if math.isnan(acc) else f'{acc:.2f}'
            lines.append(f'  {i:>3} {name:<24} {shown}')
    confusion = metrics.get('confusion_matrix')
    if confusion:
        lines.append('confusion matrix (rows: true, columns: predicted):')
        cell = max(len(str(v)) for row in confusion for v in row) + 1
        for row in confusion:
            lines.append('  ' + ''.join(f'{v:>{cell}}' for v in row))
    return '\n'.join(lines)


def _nan_to_none(value):
    """JSON has no NaN: classes without samples are written as null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


def main(argv=None):
    args = parse_args(argv)
    try:
        with user_errors('bidl-test'):
            _test(args)
    finally:
        # every rank, on success or error (see close_distributed); after
        # _test returned, so its runner is freed
        from bidl_train.engine.dist import close_distributed
        close_distributed()


def _test(args):
    """Evaluate the checkpoint; rank 0 prints and writes the reports."""
    from bidl_train.engine import build_runner
    from bidl_train.engine.checkpoint import check_checkpoint_source
    from bidl_train.evaluation import to_serialisable
    cfg = load_config(args.config, args.cfg_options)
    # a local path or an http(s) URL, loaded by the runner through
    # bidl_train.engine.checkpoint.load_checkpoint_file (see build_runner)
    check_checkpoint_source(args.checkpoint)
    if cfg.get('test_dataloader') is None or cfg.get(
            'test_evaluator') is None:
        raise ConfigError(
            f'{args.config} has no test_dataloader/test_evaluator; add '
            'them (most configs reuse the validation settings)')
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs',
        osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    cfg.resume = False
    cfg.launcher = args.launcher
    _add_firing_rate_metric(cfg)
    if args.show_dir:
        _add_raster_hook(cfg, args.show_dir, args.show_max)
    runner = build_runner(cfg)
    metrics = to_serialisable(runner.test())
    if runner.rank != 0:
        return
    classes = (getattr(runner.test_dataloader.dataset, 'metainfo', None)
               or {}).get('classes')
    print(format_metrics(metrics, classes))
    # tools/baseline.py's report beside the checkpoint (or in the work dir)
    from bidl_train.evaluation.baseline import find_baseline_line
    line = find_baseline_line(args.checkpoint, cfg.work_dir,
                              metrics.get('accuracy/top1'))
    if line:
        print(line)
    if metrics.get('nonfinite_scores'):
        # a poisoned checkpoint (NaN/Inf weights) scores NaN: say so loudly
        print(f'bidl-test: warning: {metrics["nonfinite_scores"]} samples '
              'got non-finite (NaN/Inf) scores and count as misclassified; '
              f'check {args.checkpoint} for NaN/Inf weights', file=sys.stderr)
    out = args.out or osp.join(cfg.work_dir, 'test_metrics.json')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        json.dump(
            dict(config=args.config, checkpoint=args.checkpoint,
                 metrics=_nan_to_none(metrics)), f, indent=2)
    print(f'metrics written to {out}')
    from bidl_train.visualization.reports import write_test_report
    report_dir = args.report_dir or osp.join(cfg.work_dir, 'test_report')
    written = write_test_report(metrics, report_dir, classes)
    if written:
        print(f'report ({len(written)} files) written to {report_dir}')


def _add_firing_rate_metric(cfg):
    """Per-layer firing rates belong in every test report."""
    evaluator = cfg.test_evaluator
    metrics = evaluator if isinstance(evaluator, (list, tuple)) else [
        evaluator
    ]
    if any(isinstance(m, dict) and m.get('type') == 'FiringRate'
           for m in metrics):
        return
    if isinstance(evaluator, dict) and 'metrics' in evaluator:
        return  # an Evaluator config of its own: leave it as written
    cfg.test_evaluator = list(metrics) + [dict(type='FiringRate')]


def _add_raster_hook(cfg, show_dir, show_max):
    if show_max < 1:
        raise ConfigError(f'--show-max must be >= 1, got {show_max}')
    # importing registers the hook whatever the registry locations say
    import bidl_train.engine.hooks.spike_misclassified  # noqa: F401
    hooks = list(cfg.get('custom_hooks') or [])
    hooks.append(dict(type='MisclassifiedRasterHook',
                      out_dir=osp.abspath(show_dir), max_samples=show_max))
    cfg.custom_hooks = hooks


if __name__ == '__main__':
    main()
