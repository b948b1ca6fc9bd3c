"""Plot the loss and accuracy curves of several runs into one PNG.

Examples::

    python tools/compare_runs.py work_dirs/a work_dirs/b --out curves.png
    python tools/compare_runs.py work_dirs/a work_dirs/b \
        --labels baseline "plif" --keys loss accuracy/top1 lr --smooth 10

Each argument is a work dir (all ``<timestamp>/vis_data/scalars.json`` below
it are read in order, so resumed runs join up), a run's timestamp dir, or a
``scalars.json`` file. Training scalars are drawn against the iteration,
validation metrics against the validation step (the epoch).
"""
import argparse
import os.path as osp
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog='compare_runs',
        description='Curves of several work dirs in one PNG')
    parser.add_argument('runs', nargs='+', help='work dirs (or scalars.json)')
    parser.add_argument('--labels', nargs='+',
                        help='legend names, one per run (default: the '
                        'folder names)')
    parser.add_argument('--keys', nargs='+',
                        help='scalars to plot (default: loss and every '
                        'accuracy/* curve)')
    parser.add_argument('--smooth', type=int, default=1,
                        help='moving-average window over iterations')
    parser.add_argument('--out', default='compare_runs.png',
                        help='output PNG (default compare_runs.png)')
    parser.add_argument('--title', help='figure title')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from bidl_train.cli.common import user_errors
    with user_errors('compare_runs'):
        from bidl_train.errors import ConfigError
        from bidl_train.visualization.curves import (compare_runs_figure,
                                                     read_curves)
        from bidl_train.visualization.figures import save_png
        if args.labels and len(args.labels) != len(args.runs):
            raise ConfigError(f'--labels has {len(args.labels)} names for '
                              f'{len(args.runs)} runs')
        labels = args.labels or [
            osp.basename(osp.normpath(run)) or run for run in args.runs
        ]
        if len(set(labels)) != len(labels):
            labels = [osp.normpath(run) for run in args.runs]
        runs = {label: read_curves(run)
                for label, run in zip(labels, args.runs)}
        fig = compare_runs_figure(runs, args.keys, smooth=args.smooth,
                                  title=args.title)
        print(f'curves written to {save_png(fig, args.out)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
