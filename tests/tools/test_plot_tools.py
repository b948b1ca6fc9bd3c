"""tools/plot_events.py and tools/compare_runs.py on tiny generated inputs."""
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from bidl_train.datasets.io import make_events

from helpers.paths import REPO


def load_tool(name):
    spec = importlib.util.spec_from_file_location(
        f'tool_{name}', osp.join(REPO, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def event_file(tmp_path):
    """16 events on a 4x4 sensor: 4 per quarter of the recording.

    Split by number into T=4 frames, frame k holds exactly the events
    4k..4k+3: ON events at pixel (y=k, x=k), OFF events at (y=k, x=3-k).
    """
    t, x, y, p = [], [], [], []
    for k in range(4):
        for j in range(4):
            t.append(100 * (4 * k + j))
            on = j % 2 == 0
            x.append(k if on else 3 - k)
            y.append(k)
            p.append(1 if on else 0)
    path = tmp_path / 'events.npy'
    np.save(path, make_events(t, x, y, p))
    return str(path)


def test_plot_events_frames_and_gif(event_file, tmp_path, capsys):
    tool = load_tool('plot_events')
    out = tmp_path / 'out'
    assert tool.main([event_file, '--T', '4', '--out-dir', str(out)]) == 0
    assert 'frames written' in capsys.readouterr().out
    with Image.open(out / 'events.png') as png:
        assert png.size[0] > 300
    with Image.open(out / 'events.gif') as gif:
        assert gif.n_frames == 4
        scale = gif.size[0] // 4  # upscaled 4x4 sensor
        for k in range(4):
            gif.seek(k)
            rgb = np.asarray(gif.convert('RGB'))
            centre = scale // 2

            def pixel(yy, xx):
                return rgb[yy * scale + centre, xx * scale + centre].tolist()

            assert pixel(k, k) == [255, 0, 0]  # ON: red
            assert pixel(k, 3 - k) == [0, 0, 255]  # OFF: blue
            other = (k + 1) % 4
            assert pixel(other, other) == [255, 255, 255]  # nothing


def test_plot_events_sensor_size_and_no_gif(event_file, tmp_path):
    tool = load_tool('plot_events')
    tool.main([event_file, '--T', '2', '--sensor-size', '8', '8',
               '--no-gif', '--name', 'x', '--out-dir', str(tmp_path)])
    assert osp.isfile(tmp_path / 'x.png')
    assert not osp.exists(tmp_path / 'x.gif')


def test_plot_events_missing_file_is_a_clean_error(tmp_path, capsys):
    tool = load_tool('plot_events')
    with pytest.raises(SystemExit) as exit_info:
        tool.main([str(tmp_path / 'nope.aedat')])
    assert exit_info.value.code == 2
    assert 'nope.aedat' in capsys.readouterr().err


def test_plot_events_config_sample(tmp_path):
    """Sample 1 of a config's validation set, as the network sees it."""
    demo = osp.join(REPO, 'configs', 'demo', 'synthetic_gesture.py')
    cfg = tmp_path / 'tiny.py'
    cfg.write_text(f'''
_base_ = [{demo!r}]
_gen = dict(data_root={str(tmp_path / "data")!r}, users_train=1,
            users_test=1, conditions=1, num_classes=2,
            representation=dict(type='EventFrames', num_steps=3, size=16))
val_dataloader = dict(dataset=_gen)
''')
    tool = load_tool('plot_events')
    tool.main([str(cfg), '--split', 'val', '--index', '1', '--out-dir',
               str(tmp_path / 'o')])
    with Image.open(tmp_path / 'o' / 'tiny_val1.gif') as gif:
        assert gif.n_frames == 3
    with pytest.raises(SystemExit):
        tool.main([str(cfg), '--index', '99', '--out-dir', str(tmp_path)])


def write_run(folder, losses, accs):
    vis = folder / '20240101_000000' / 'vis_data'
    vis.mkdir(parents=True)
    lines = [dict(loss=v, lr=0.1, epoch=1, iter=i + 1, step=i + 1)
             for i, v in enumerate(losses)]
    lines += [{'accuracy/top1': a, 'step': i + 1}
              for i, a in enumerate(accs)]
    (vis / 'scalars.json').write_text(
        '\n'.join(json.dumps(x) for x in lines) + '\n')


def test_compare_runs_png(tmp_path, capsys):
    write_run(tmp_path / 'a', [2.0, 1.0, 0.5], [50.0, 75.0])
    write_run(tmp_path / 'b', [2.0, 1.5, 1.2], [40.0, 45.0])
    tool = load_tool('compare_runs')
    out = tmp_path / 'cmp.png'
    tool.main([str(tmp_path / 'a'), str(tmp_path / 'b'), '--out', str(out)])
    assert 'curves written' in capsys.readouterr().out
    with Image.open(out) as png:
        # loss and accuracy/top1 side by side: wider than tall
        assert png.size[0] > png.size[1] > 200


def test_compare_runs_errors(tmp_path, capsys):
    write_run(tmp_path / 'a', [1.0], [10.0])
    tool = load_tool('compare_runs')
    with pytest.raises(SystemExit) as exit_info:
        tool.main([str(tmp_path / 'a'), '--keys', 'accuracy/top5', '--out',
                   str(tmp_path / 'x.png')])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "'accuracy/top5'" in err and 'accuracy/top1' in err
    with pytest.raises(SystemExit):
        tool.main([str(tmp_path / 'missing')])
    assert 'missing' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.main([str(tmp_path / 'a'), '--labels', 'x', 'y'])
    assert '--labels' in capsys.readouterr().err


def test_compare_runs_one_colour_per_run_in_every_panel(tmp_path):
    """Run 'a' logged no accuracy: the colour cycle of the accuracy panel
    must not hand run 'b' the colour that 'a' has in the loss panel."""
    from matplotlib.colors import to_rgba

    from bidl_train.visualization.curves import (compare_runs_figure,
                                                 read_curves)
    write_run(tmp_path / 'a', [2.0, 1.0, 0.5], [])
    write_run(tmp_path / 'b', [2.0, 1.5, 1.2], [40.0, 45.0])
    write_run(tmp_path / 'c', [2.5, 1.5, 1.0], [30.0, 35.0])
    runs = {name: read_curves(str(tmp_path / name)) for name in 'abc'}
    fig = compare_runs_figure(runs, ['loss', 'accuracy/top1'])
    panels = [ax for ax in fig.axes if ax.get_visible()]
    colours = {}  # run -> set of colours over all panels
    for ax in panels:
        for line in ax.get_lines():
            colours.setdefault(line.get_label(), set()).add(
                to_rgba(line.get_color()))
    assert set(colours) == {'a', 'b', 'c'}
    assert all(len(c) == 1 for c in colours.values()), colours
    assert len({next(iter(c)) for c in colours.values()}) == 3
    # the accuracy panel draws b and c only, still in their loss colours
    assert [line.get_label() for line in panels[1].get_lines()] == ['b', 'c']


def _spread_events(width, height, n=400, seed=0):
    """Events whose coordinates reach exactly (width - 1, height - 1)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, width, n)
    y = rng.integers(0, height, n)
    x[0], y[0] = width - 1, height - 1
    return make_events(np.arange(n) * 10, x, y, rng.integers(0, 2, n))


def test_plot_events_sensor_from_the_aedat_header(tmp_path, capsys):
    """A DVS128 recording whose events reach only 113x111 is drawn on the
    128x128 sensor its header names, not on 113x111."""
    from bidl_train.datasets.io import write_aedat31
    path = tmp_path / 'user01.aedat'
    write_aedat31(path, _spread_events(113, 111))  # header: Source DVS128
    tool = load_tool('plot_events')
    tool.main([str(path), '--T', '2', '--out-dir', str(tmp_path)])
    assert 'sensor 128x128 (W x H): the file header names a DVS128' in \
        capsys.readouterr().out
    with Image.open(tmp_path / 'user01.gif') as gif:
        assert gif.size == (256, 256)  # 128 x 128 upscaled twice


def test_plot_events_sensor_from_format_and_fallback(tmp_path, capsys):
    from bidl_train.datasets.io import write_nmnist_bin
    tool = load_tool('plot_events')
    write_nmnist_bin(tmp_path / 'digit.bin', _spread_events(30, 31))
    tool.main([str(tmp_path / 'digit.bin'), '--T', '2', '--no-gif',
               '--out-dir', str(tmp_path)])
    assert 'sensor 34x34 (W x H): the N-MNIST .bin sensor' in \
        capsys.readouterr().out
    np.save(tmp_path / 'plain.npy', _spread_events(30, 31))
    tool.main([str(tmp_path / 'plain.npy'), '--T', '2', '--no-gif',
               '--out-dir', str(tmp_path)])
    out = capsys.readouterr().out
    assert 'sensor 30x31 (W x H): guessed from the largest event ' \
        'coordinates' in out


def test_plot_events_header_too_small_for_the_events_is_enlarged(
        tmp_path, capsys):
    from bidl_train.datasets.io import write_aedat31
    path = tmp_path / 'remapped.aedat'
    write_aedat31(path, _spread_events(200, 100))  # names a DVS128
    tool = load_tool('plot_events')
    tool.main([str(path), '--T', '2', '--no-gif', '--out-dir',
               str(tmp_path)])
    out = capsys.readouterr().out
    assert 'sensor 200x128 (W x H)' in out and 'enlarged' in out


def test_aedat4_header_geometry(tmp_path):
    """AEDAT 4 keeps sizeX/sizeY in the info XML of its IO header."""
    xml = (b'<node name="outInfo"><node name="0"><node name="info">'
           b'<attr key="sizeX" type="int">346</attr>'
           b'<attr key="sizeY" type="int">260</attr>'
           b'<attr key="source" type="string">DVXplorer_1</attr>'
           b'</node></node></node>')
    path = tmp_path / 'rec.aedat4'
    path.write_bytes(b'#!AER-DAT4.0\r\n' + len(xml).to_bytes(4, 'little') +
                     xml + b'\x00' * 64)
    tool = load_tool('plot_events')
    assert tool.known_sensor_size(str(path), None, (10, 10)) == (
        (260, 346), 'from the file header (sizeX/sizeY)')
    assert tool.header_geometry(b'#sizeX: 640\r\n#sizeY: 480') == (480, 640)
    assert tool.header_geometry(b'#Source 1: DVS128') is None


def test_plot_events_sensor_size_is_width_then_height(event_file, tmp_path,
                                                       capsys):
    tool = load_tool('plot_events')
    tool.main([event_file, '--T', '2', '--sensor-size', '8', '6',
               '--name', 'wide', '--out-dir', str(tmp_path)])
    assert 'sensor 8x6 (W x H): from --sensor-size' in \
        capsys.readouterr().out
    with Image.open(tmp_path / 'wide.gif') as gif:
        assert gif.size == (8 * 43, 6 * 43)  # short side 6 -> 43x to 256
    with pytest.raises(SystemExit) as exit_info:
        tool.main([event_file, '--sensor-size', '3', '8', '--out-dir',
                   str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert '--sensor-size 3 8' in err and 'pass at least 4 4' in err


def test_frames_grid_title_clear_of_the_frames_at_T60(event_file):
    """The suptitle of a 60-frame grid (8 rows) overlaps no frame or frame
    title, and stays inside the figure; the frames do not overlap."""
    tool = load_tool('plot_events')
    from bidl_train.visualization.events import frames_grid_figure
    args = tool.parse_args([event_file, '--T', '60', '--split-by', 'time'])
    frames, title = tool.frames_from_file(args)
    assert frames.shape[0] == 60
    for shown in (frames, frames[:1]):  # 8 rows; 1 frame: a narrow figure
        fig = frames_grid_figure(shown, title, cols=8)
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        heading = fig._suptitle.get_window_extent(renderer)
        boxes = [ax.get_tightbbox(renderer) for ax in fig.axes
                 if ax.get_visible()]
        assert len(boxes) == shown.shape[0]
        assert not any(box.overlaps(heading) for box in boxes)
        assert all(heading.y0 > box.y1 for box in boxes)
        assert fig.bbox.x0 <= heading.x0 and heading.x1 <= fig.bbox.x1
        assert heading.y1 <= fig.bbox.y1
        for i, box in enumerate(boxes):
            assert not any(box.overlaps(other) for other in boxes[i + 1:])


def test_plot_events_sensor_from_a_prophesee_header(tmp_path, capsys):
    """The reader's header geometry (a Prophesee .dat, 640x480) wins over
    the few coordinates the events reach."""
    from helpers.prophesee_writers import dat_bytes
    path = tmp_path / 'rec.dat'
    path.write_bytes(dat_bytes([(10, 0, 0, 0), (20, 5, 6, 1), (30, 9, 3, 1)],
                               640, 480))
    tool = load_tool('plot_events')
    tool.main([str(path), '--T', '2', '--no-gif', '--out-dir',
               str(tmp_path)])
    assert 'sensor 640x480 (W x H): from the file header' in \
        capsys.readouterr().out
