"""Render an event file, or one sample of a config's dataset, as frames.

Examples::

    # any file read_events reads (AEDAT 2/3.1/4, N-MNIST .bin, .npy/.npz)
    python tools/plot_events.py user01_fluorescent.aedat --T 8
    # sample 3 of the validation set of a config, as the network sees it
    python tools/plot_events.py configs/demo/synthetic_gesture.py \
        --split val --index 3

Writes ``<out-dir>/<name>.png`` (all frames in a grid) and, unless
``--no-gif``, ``<out-dir>/<name>.gif``.
"""
import argparse
import os
import os.path as osp
import sys

CONFIG_EXTENSIONS = ('.py', '.yaml', '.yml')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog='plot_events',
        description='Render an event file or a dataset sample as frames '
        'and a GIF')
    parser.add_argument(
        'source', help='an event file, or a config (.py/.yaml) whose '
        'dataset sample to draw')
    parser.add_argument('--out-dir', default='.',
                        help='output folder (default: current folder)')
    parser.add_argument('--name', help='output file stem (default: from '
                        'the source)')
    parser.add_argument('--no-gif', action='store_true',
                        help='write the PNG grid only')
    parser.add_argument('--fps', type=float, default=4,
                        help='GIF frames per second (default 4)')
    parser.add_argument('--cols', type=int, default=8,
                        help='frames per row of the PNG grid (default 8)')
    events = parser.add_argument_group('event files')
    events.add_argument('--format', help='event format, if not detected')
    events.add_argument('--T', type=int, default=8,
                        help='number of frames (default 8)')
    events.add_argument('--split-by', default='number',
                        choices=['number', 'time'],
                        help='equal event counts or equal durations')
    events.add_argument('--sensor-size', type=int, nargs=2,
                        metavar=('H', 'W'),
                        help='sensor height and width (default: from the '
                        'largest coordinates)')
    events.add_argument('--size', type=int,
                        help='downscale frames to SIZE x SIZE')
    config = parser.add_argument_group('config samples')
    config.add_argument('--split', default='val',
                        choices=['train', 'val', 'test'],
                        help='which dataloader\'s dataset (default val)')
    config.add_argument('--index', type=int, default=0,
                        help='sample index (default 0)')
    from bidl_train.cli.common import add_cfg_options
    add_cfg_options(parser)
    return parser.parse_args(argv)


def frames_from_file(args):
    from bidl_train.datasets.io import read_events
    from bidl_train.datasets.representations import events_to_frames
    from bidl_train.errors import ConfigError, DataError
    events = read_events(args.source, format=args.format)
    if len(events) == 0:
        raise DataError('the file holds no events', path=args.source)
    if args.T < 1:
        raise ConfigError(f'--T must be >= 1, got {args.T}')
    sensor = tuple(args.sensor_size) if args.sensor_size else (
        int(events['y'].max()) + 1, int(events['x'].max()) + 1)
    frames = events_to_frames(events, sensor, T=args.T,
                              split_by=args.split_by, size=args.size)
    span = (int(events['t'][-1]) - int(events['t'][0])) / 1e3
    title = (f'{osp.basename(args.source)}: {len(events)} events, '
             f'{span:.1f} ms, sensor {sensor[0]}x{sensor[1]}, '
             f'{args.T} frames by {args.split_by}')
    return frames, title


def frames_from_config(args):
    from mmengine.registry import init_default_scope

    from bidl_train.cli.common import load_config
    from bidl_train.errors import ConfigError
    from bidl_train.registry import DATASETS
    cfg = load_config(args.source, args.cfg_options)
    key = f'{args.split}_dataloader'
    loader = cfg.get(key)
    if not loader or 'dataset' not in loader:
        raise ConfigError(f'{args.source} has no {key}.dataset')
    init_default_scope(cfg.get('default_scope', 'bidl_train'))
    dataset = DATASETS.build(loader['dataset'])
    if not 0 <= args.index < len(dataset):
        raise ConfigError(f'--index {args.index} outside the {args.split} '
                          f'set of {len(dataset)} samples')
    sample = dataset[args.index]
    inputs = sample['inputs'] if isinstance(sample, dict) else sample
    frames = inputs.numpy() if hasattr(inputs, 'numpy') else inputs
    label = sample.get('label') if isinstance(sample, dict) else None
    classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
    shown = '' if label is None else f', label {int(label)}'
    if label is not None and classes and int(label) < len(classes):
        shown += f' ({classes[int(label)]})'
    title = (f'{osp.basename(args.source)}: {args.split} sample '
             f'{args.index}{shown}, shape {tuple(frames.shape)}')
    return frames, title


def main(argv=None):
    args = parse_args(argv)
    from bidl_train.cli.common import user_errors
    with user_errors('plot_events'):
        from bidl_train.visualization.events import (frames_grid_figure,
                                                     save_gif)
        from bidl_train.visualization.figures import save_png
        is_config = args.source.lower().endswith(CONFIG_EXTENSIONS)
        frames, title = (frames_from_config(args) if is_config else
                         frames_from_file(args))
        stem = args.name or osp.splitext(osp.basename(args.source))[0] + (
            f'_{args.split}{args.index}' if is_config else '')
        os.makedirs(args.out_dir, exist_ok=True)
        png = save_png(frames_grid_figure(frames, title, cols=args.cols),
                       osp.join(args.out_dir, stem + '.png'))
        print(f'frames written to {png}')
        if not args.no_gif:
            gif = save_gif(frames, osp.join(args.out_dir, stem + '.gif'),
                           fps=args.fps)
            print(f'animation written to {gif}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
