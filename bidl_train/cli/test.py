"""``bidl-test CONFIG CHECKPOINT``: evaluate a checkpoint on the test split.

Besides printing the metrics and writing them as JSON (``--metrics-out``,
default ``<work-dir>/test_metrics.json``), it writes a report folder
(``--report-dir``, default ``<work-dir>/test_report``) with the per-class
accuracy and confusion matrix as CSV and PNG and the per-layer firing
rates, with ``--out FILE`` every sample's prediction (as mmpretrain's
``--out`` does, in JSON, CSV or NPZ), and with ``--show-dir DIR`` raster
plots of the misclassified samples.

It also judges the health of the evaluated model: the config's
``TrainingHealthHook`` (``default_hooks.health``; added with its defaults
when the config has no such key, left out when the config sets it to None)
measures every spiking layer's firing rate over the test set, warns on the
console about each silent or saturated layer with what usually fixes it,
and the rates and warnings go into the JSON report under ``health``. Where
``tools/baseline.py`` left a ``baseline.json`` beside the checkpoint (or in
the work dir), it prints the baselines beside the checkpoint's accuracy and
the report holds them under ``baseline``.
"""
import argparse
import csv
import json
import math
import os
import os.path as osp
import sys

from bidl_train.errors import ConfigError

from .common import add_cfg_options, add_data_root, load_config, user_errors

#: ``--out`` formats, by file extension
PREDICTION_FORMATS = ('.json', '.csv', '.npz')


def build_parser():
    parser = argparse.ArgumentParser(
        prog='bidl-test', description='Evaluate a trained checkpoint')
    parser.add_argument('config', help='config file (.py or .yaml)')
    parser.add_argument(
        'checkpoint', help='checkpoint file (.pth) or http(s) URL')
    parser.add_argument(
        '--work-dir',
        help='where the test log goes (default work_dirs/<config stem>)')
    add_data_root(parser)
    parser.add_argument(
        '--out', metavar='FILE',
        help='write every sample\'s prediction here, as mmpretrain\'s '
        '--out does: sample_idx, gt_label, pred_label (-1: no unique top '
        'score) and pred_score (class scores). The format follows the '
        'extension: .json (also holds the metrics, as --out did before), '
        '.csv or .npz. Not .pkl: loading a pickle runs code')
    parser.add_argument(
        '--metrics-out', metavar='FILE',
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
        default='none',
        help='job launcher for distributed testing (pytorch: under '
        'torchrun; each rank tests part of the split and rank 0 writes '
        'the results)')
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0,
                        help=argparse.SUPPRESS)
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def check_prediction_path(path):
    """Refuse an ``--out`` format we do not write, before any work."""
    ext = osp.splitext(path)[1].lower()
    if ext in PREDICTION_FORMATS:
        return
    if ext in ('.pkl', '.pickle'):
        raise ConfigError(
            f'--out {path}: predictions are written as '
            '.json, .csv or .npz, not as a pickle (loading a pickle runs '
            'code, so a results file would be unsafe to open); the .json '
            'holds the fields of mmpretrain\'s .pkl')
    raise ConfigError(
        f'--out {path}: unknown format {ext or "(none)"}; '
        f'give a file ending in {", ".join(PREDICTION_FORMATS)}')


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
        with user_errors('bidl-test') as errors:
            _test(args, errors)
    finally:
        # every rank, on success or error (see close_distributed); after
        # _test returned, so its runner is freed
        from bidl_train.engine.dist import close_distributed
        close_distributed()


def _test(args, errors):
    """Evaluate the checkpoint; rank 0 prints and writes the reports."""
    from bidl_train.engine import build_runner
    from bidl_train.engine.checkpoint import check_checkpoint_source
    from bidl_train.engine.runner import discard_failed_run_dirs
    from bidl_train.evaluation import to_serialisable
    if args.out:
        check_prediction_path(args.out)
    cfg = load_config(args.config, args.cfg_options, args.data_root)
    errors.cfg = cfg
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
    _add_health_hook(cfg)
    if args.show_dir:
        _add_raster_hook(cfg, args.show_dir, args.show_max)
    if args.out:
        _add_metric(cfg, 'SamplePredictions')
    with discard_failed_run_dirs(cfg.work_dir):
        runner = build_runner(cfg)
        metrics = to_serialisable(runner.test())
    if runner.rank != 0:
        return
    classes = (getattr(runner.test_dataloader.dataset, 'metainfo', None)
               or {}).get('classes')
    print(format_metrics(metrics, classes))
    # tools/baseline.py's report beside the checkpoint (or in the work dir)
    from bidl_train.evaluation.baseline import (baseline_line,
                                                baseline_summary,
                                                find_baseline)
    baseline = find_baseline(args.checkpoint, cfg.work_dir)
    if baseline:
        print(baseline_line(baseline, metrics.get('accuracy/top1')))
        baseline = baseline_summary(baseline)
    if metrics.get('nonfinite_scores'):
        # a poisoned checkpoint (NaN/Inf weights) scores NaN: say so loudly
        print(f'bidl-test: warning: {metrics["nonfinite_scores"]} samples '
              'got non-finite (NaN/Inf) scores and count as misclassified; '
              f'check {args.checkpoint} for NaN/Inf weights', file=sys.stderr)
    health = _health_report(runner)
    summary = health_summary(health)
    if summary:
        print(summary)
    header = dict(config=args.config, checkpoint=args.checkpoint,
                  metrics=_nan_to_none(metrics), health=health,
                  baseline=baseline)
    out = args.metrics_out or osp.join(cfg.work_dir, 'test_metrics.json')
    _write_json(out, header)
    print(f'metrics written to {out}')
    if args.out:
        predictions = _collected_predictions(runner)
        write_predictions(args.out, predictions, header, classes)
        print(f'{len(predictions)} predictions written to {args.out}')
    from bidl_train.visualization.reports import write_test_report
    report_dir = args.report_dir or osp.join(cfg.work_dir, 'test_report')
    written = write_test_report(metrics, report_dir, classes)
    if written:
        print(f'report ({len(written)} files) written to {report_dir}')


def _add_firing_rate_metric(cfg):
    """Per-layer firing rates belong in every test report."""
    evaluator = cfg.test_evaluator
    if isinstance(evaluator, dict) and 'metrics' in evaluator:
        return  # an Evaluator config of its own: leave it as written
    _add_metric(cfg, 'FiringRate')


def _add_health_hook(cfg):
    """Judge the tested model's spiking layers (TrainingHealthHook's test
    checks), unless the config turned the hook off (``health=None``) or
    adds one as a custom hook."""
    hooks = dict(cfg.get('default_hooks') or {})
    if 'health' in hooks or any(
            isinstance(h, dict) and h.get('type') == 'TrainingHealthHook'
            for h in cfg.get('custom_hooks') or []):
        return
    hooks['health'] = dict(type='TrainingHealthHook')
    cfg.default_hooks = hooks


def _health_report(runner):
    """The ``TrainingHealthHook.test_report`` of this test run (None when
    the hook is off or watches neither silent nor saturated layers)."""
    from bidl_train.engine.hooks.training_health import TrainingHealthHook
    for hook in runner.hooks:
        if isinstance(hook, TrainingHealthHook):
            return hook.test_report
    return None


def health_summary(health):
    """One line naming the silent and saturated spiking layers of a
    ``TrainingHealthHook.test_report``; None without a report."""
    if not health:
        return None
    layers, samples = health['layers'], health['samples']
    found = [(condition, [name for name, layer in layers.items()
                          if layer['condition'] == condition])
             for condition in ('silent', 'saturated')]
    parts = [f'{len(names)} {condition} ({", ".join(names)})'
             for condition, names in found if names]
    if not parts:
        return (f'health: all {len(layers)} spiking layers fired over the '
                f'{samples} test samples, none at a rate >= '
                f'{health["saturated_rate"]:g}')
    return (f'health: of {len(layers)} spiking layers over the {samples} '
            f'test samples, {" and ".join(parts)}; see the '
            'TrainingHealthHook warnings above')


def _add_metric(cfg, name):
    """Add metric ``name`` to the test evaluator unless it is there."""
    if name == 'SamplePredictions':
        # importing registers it whatever the registry locations say
        import bidl_train.evaluation.metrics.predictions  # noqa: F401
    evaluator = cfg.test_evaluator
    if isinstance(evaluator, dict) and 'metrics' in evaluator:
        metrics = evaluator['metrics']  # an Evaluator config of its own
        metrics = metrics if isinstance(metrics, (list, tuple)) else [
            metrics]
    else:
        metrics = evaluator if isinstance(evaluator, (list, tuple)) else [
            evaluator]
    if any(isinstance(m, dict) and m.get('type') == name for m in metrics):
        return
    metrics = list(metrics) + [dict(type=name)]
    if isinstance(evaluator, dict) and 'metrics' in evaluator:
        evaluator['metrics'] = metrics
    else:
        cfg.test_evaluator = metrics


def _collected_predictions(runner):
    from bidl_train.evaluation.metrics.predictions import SamplePredictions
    for metric in runner.test_loop.evaluator.metrics:
        if isinstance(metric, SamplePredictions):
            return metric.predictions
    raise ConfigError('bidl-test --out: the test evaluator lost its '
                      'SamplePredictions metric')


def write_predictions(path, predictions, header, classes=None):
    """Write per-sample predictions as .json, .csv or .npz (by extension).

    JSON: ``header`` (config, checkpoint, metrics) plus ``classes`` and
    ``predictions``, a list of ``{sample_idx, gt_label, pred_label,
    pred_score}``; NaN scores as null. CSV: one row per sample, columns
    ``sample_idx, gt_label, pred_label, score_0 ... score_{C-1}``. NPZ:
    arrays ``sample_idx [N]``, ``gt_label [N]`` (-1: no label),
    ``pred_label [N]``, ``pred_score [N, C]`` and ``classes``.
    """
    import numpy as np
    ext = osp.splitext(path)[1].lower()
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    if ext == '.json':
        _write_json(path, dict(header, classes=list(classes or []),
                               predictions=_nan_to_none(predictions)))
    elif ext == '.csv':
        width = max((len(p['pred_score']) for p in predictions), default=0)
        with open(path, 'w', newline='') as f:
            writer = csv.writer(f)
            writer.writerow(['sample_idx', 'gt_label', 'pred_label'] +
                            [f'score_{i}' for i in range(width)])
            for p in predictions:
                writer.writerow(
                    [p['sample_idx'], '' if p['gt_label'] is None else
                     p['gt_label'], p['pred_label']] + p['pred_score'])
    else:  # .npz (check_prediction_path allowed nothing else)
        np.savez(
            path,
            sample_idx=np.array([p['sample_idx'] for p in predictions],
                                dtype=np.int64),
            gt_label=np.array([-1 if p['gt_label'] is None else p['gt_label']
                               for p in predictions], dtype=np.int64),
            pred_label=np.array([p['pred_label'] for p in predictions],
                                dtype=np.int64),
            pred_score=np.array([p['pred_score'] for p in predictions],
                                dtype=np.float32),
            classes=np.array(list(classes or []), dtype=str))


def _write_json(path, data):
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(data, f, indent=2)


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
