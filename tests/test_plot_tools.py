"""tools/plot_events.py and tools/compare_runs.py on tiny generated inputs."""
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from bidl_train.datasets.io import make_events

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


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
            representation=dict(type='EventFrames', T=3, size=16))
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
