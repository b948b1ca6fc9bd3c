"""Render an event file, or one sample of a config's dataset, as frames.

Examples::

    # any file read_events reads (AEDAT 2/3.1/4, N-MNIST .bin, Prophesee
    # .dat/.raw, .npy/.npz)
    python tools/plot_events.py user01_fluorescent.aedat --T 8
    # sample 3 of the validation set of a config, as the network sees it
    python tools/plot_events.py configs/demo/synthetic_gesture.py \
        --split val --index 3

Writes ``<out-dir>/<name>.png`` (all frames in a grid) and, unless
``--no-gif``, ``<out-dir>/<name>.gif``.

The sensor size of an event file comes, in this order, from ``--sensor-size
W H``, the file's header (Prophesee ``.dat``/``.raw`` geometry, AEDAT 4
``sizeX``/``sizeY``; a camera named in an AEDAT 2/3.1/4 header: DVS128,
DAVIS128/240/346, DVXplorer (Lite)), the format's fixed sensor (N-MNIST
``.bin``: 34x34; AEDAT 2.0 decoded with the DVS128 address layout:
128x128), and only when none of these says it, from the largest
coordinates (said so on the console).
"""
import argparse
import os
import os.path as osp
import re
import struct
import sys

CONFIG_EXTENSIONS = ('.py', '.yaml', '.yml')
# cameras a file header may name, and their sensors as (H, W); the Lite
# entry comes before the plain DVXplorer so that it matches first
KNOWN_CAMERAS = (
    ('DVXplorer Lite', rb'DVXPLORER[ _-]?LITE', (240, 320)),
    ('DVXplorer', rb'DVXPLORER', (480, 640)),
    ('DAVIS346', rb'DAVIS[ _-]?346', (260, 346)),
    ('DAVIS240', rb'DAVIS[ _-]?240', (180, 240)),
    ('DAVIS128', rb'DAVIS[ _-]?128', (128, 128)),
    ('DVS128', rb'DVS[ _-]?128', (128, 128)),
)
NMNIST_SENSOR = (34, 34)  # the N-MNIST saccade recordings, cropped
HEADER_BYTES = 1 << 16  # the most of a file read to look for its header


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
                        metavar=('W', 'H'),
                        help='sensor width and height, e.g. 346 260 for a '
                        'DAVIS346 (default: from the file header or the '
                        'format, else the largest coordinates)')
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
    from bidl_train.datasets.event_binning import events_to_frames
    from bidl_train.errors import ConfigError, DataError
    events, recorded = read_events(args.source, format=args.format,
                                   return_sensor_size=True)
    if len(events) == 0:
        raise DataError('the file holds no events', path=args.source)
    if args.T < 1:
        raise ConfigError(f'--T must be >= 1, got {args.T}')
    sensor, source = choose_sensor_size(args, events, recorded)
    print(f'sensor {sensor[1]}x{sensor[0]} (W x H): {source}')
    frames = events_to_frames(events, sensor, T=args.T,
                              split_by=args.split_by, size=args.size)
    span = (int(events['t'][-1]) - int(events['t'][0])) / 1e3
    title = (f'{osp.basename(args.source)}: {len(events)} events, '
             f'{span:.1f} ms, sensor {sensor[1]}x{sensor[0]}, '
             f'{args.T} frames by {args.split_by}')
    return frames, title


def choose_sensor_size(args, events, recorded=None):
    """``((H, W), where it came from)`` for the events of ``args.source``.

    ``--sensor-size`` first, then ``recorded`` (the ``(H, W)`` the reader
    found in the file's header), what else the file or its format says, and
    the largest coordinates only when nothing says it.
    """
    from bidl_train.errors import ConfigError
    reach = (int(events['y'].max()) + 1, int(events['x'].max()) + 1)
    if args.sensor_size:
        width, height = args.sensor_size
        if width < reach[1] or height < reach[0]:
            raise ConfigError(
                f'--sensor-size {width} {height} (W H) is smaller than the '
                f'events of {args.source}, which reach x={reach[1] - 1}, '
                f'y={reach[0] - 1}; pass at least {reach[1]} {reach[0]}')
        return (height, width), 'from --sensor-size'
    if recorded is not None:
        known, source = tuple(recorded), 'from the file header'
    else:
        known, source = known_sensor_size(args.source, args.format, reach)
    if known is None:
        return reach, ('guessed from the largest event coordinates: the '
                       'file records no sensor size (pass --sensor-size W H '
                       'if the sensor is larger)')
    if reach[0] > known[0] or reach[1] > known[1]:
        grown = (max(known[0], reach[0]), max(known[1], reach[1]))
        return grown, (f'{source} says {known[1]}x{known[0]}, but events '
                       f'reach x={reach[1] - 1}, y={reach[0] - 1}; '
                       'enlarged to hold them')
    return known, source


def known_sensor_size(path, format, reach):
    """``((H, W), source)`` the file or its format records, or
    ``(None, None)``. ``reach`` is (H, W) the events need."""
    from bidl_train.datasets.io import detect_format
    fmt = format or detect_format(path)
    header = file_header(path, fmt)
    size = header_geometry(header)
    if size is not None:
        return size, 'from the file header (sizeX/sizeY)'
    for camera, pattern, size in KNOWN_CAMERAS:
        if re.search(pattern, header.upper()):
            return size, f'the file header names a {camera}'
    if fmt == 'nmnist_bin' and reach[0] <= 34 and reach[1] <= 34:
        return NMNIST_SENSOR, 'the N-MNIST .bin sensor'
    if fmt == 'aedat2' and b'DAVIS' not in header.upper() and max(
            reach) <= 128:
        # the reader decodes 7-bit x and y: the DVS128 address layout
        return (128, 128), 'AEDAT 2.0 in the DVS128 address layout'
    return None, None


def file_header(path, fmt):
    """The header bytes of an AEDAT file (b'' for formats without one).

    AEDAT 2/3.1: the leading '#' lines. AEDAT 4: the version line and the
    flatbuffer IO header after it (its length is the int32 that follows
    the version line), whose info XML names the camera and its size.
    """
    if not fmt.startswith('aedat'):
        return b''
    with open(path, 'rb') as f:
        head = f.read(HEADER_BYTES)
    if fmt == 'aedat4':
        line_end = head.find(b'\n') + 1
        if line_end <= 0 or len(head) < line_end + 4:
            return b''
        length, = struct.unpack_from('<i', head, line_end)
        return head[line_end + 4:line_end + 4 + max(0, length)]
    lines = []
    for line in head.split(b'\n'):
        if not line.startswith(b'#'):
            break
        lines.append(line)
    return b'\n'.join(lines)


def header_geometry(header):
    """``(H, W)`` from ``sizeX``/``sizeY`` entries of a header, or None."""
    found = {}
    for axis in ('X', 'Y'):
        # XML '<attr key="sizeX" type="int">346</attr>' or 'sizeX: 346'
        match = re.search(
            rb'size' + axis.encode() + rb'\b[^0-9]{0,40}?(\d+)', header)
        if match:
            found[axis] = int(match.group(1))
    if len(found) == 2 and found['X'] > 0 and found['Y'] > 0:
        return found['Y'], found['X']
    return None


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
