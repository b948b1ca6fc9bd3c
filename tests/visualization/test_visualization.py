"""Unit tests of bidl_train.visualization against hand-computed values."""
import csv
import io
import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from bidl_train.errors import DataError
from bidl_train.neurons import LIF
from bidl_train.visualization import figures
from bidl_train.visualization.curves import read_curves
from bidl_train.visualization.events import frames_to_rgb, save_gif
from bidl_train.visualization.observe import slice_batch
from bidl_train.utils.progress import ProgressDisplay, track
from bidl_train.visualization.recording import membrane_trace, record_activity
from bidl_train.visualization.reports import write_test_report
from bidl_train.visualization.spikes import raster, rate_over_time


def hand_spikes():
    """T=4, B=2, 3 neurons.

    neuron 0: fires at every step of both samples   -> saturated
    neuron 1: never fires                           -> silent
    neuron 2: sample 0 fires at t=1, sample 1 never -> neither
    """
    s = torch.zeros(4, 2, 3)
    s[:, :, 0] = 1
    s[1, 0, 2] = 1
    return s


# ---------------------------------------------------------------------------
# rasters (the per-layer statistics are the spike monitor's:
# tests/engine/test_spike_monitor.py)
# ---------------------------------------------------------------------------
def test_raster_rows_are_neurons_columns_steps():
    grid = raster(hand_spikes(), sample=0)
    expected = np.array([[1, 1, 1, 1], [0, 0, 0, 0], [0, 1, 0, 0]], bool)
    np.testing.assert_array_equal(grid, expected)
    np.testing.assert_array_equal(
        raster(hand_spikes(), sample=1)[2], [False] * 4)


def test_raster_subsamples_evenly():
    s = torch.zeros(1, 1, 10)
    s[0, 0, [0, 3, 6, 9]] = 1  # linspace(0, 9, 4) = 0, 3, 6, 9
    grid = raster(s, max_neurons=4)
    assert grid.shape == (4, 1) and grid.all()


def test_raster_rejects_a_missing_sample():
    with pytest.raises(ValueError, match='sample 2'):
        raster(hand_spikes(), sample=2)


def test_rate_over_time():
    np.testing.assert_allclose(rate_over_time(hand_spikes()),
                               [2 / 6, 3 / 6, 2 / 6, 2 / 6])
    np.testing.assert_allclose(rate_over_time(hand_spikes(), sample=1),
                               [1 / 3] * 4)


# ---------------------------------------------------------------------------
# recording on a real LIF (alpha 0.3, theta 0.5, hard reset to 0)
# ---------------------------------------------------------------------------
def lif_input():
    """Constant inputs 1.0, 0.0 and 0.4 to three neurons, T = 4.

    1.0: u = 1 > 0.5 fires every step (reset to 0)       -> saturated
    0.0: never                                           -> silent
    0.4: u = 0.4, v = 0.12; u = 0.52 fires, v = 0; ...   -> t = 1, 3
    """
    return torch.tensor([1.0, 0.0, 0.4]).repeat(4, 1, 1)  # [4, 1, 3]


def test_record_activity_and_membrane_replay():
    model = torch.nn.Sequential(LIF())
    with record_activity(model, keep_inputs=True) as records:
        model(lif_input())
    rec = records['0']
    np.testing.assert_array_equal(rec.output[:, 0, 2].numpy(), [0, 1, 0, 1])
    trace = membrane_trace(rec.module, rec.input)
    v = trace['v'][:, 0]
    np.testing.assert_allclose(v[:, 0].numpy(), [0, 0, 0, 0])
    np.testing.assert_allclose(v[:, 1].numpy(), [0, 0, 0, 0])
    np.testing.assert_allclose(v[:, 2].numpy(), [0.12, 0, 0.12, 0],
                               atol=1e-6)


def test_record_activity_keeps_chosen_samples():
    x = torch.zeros(3, 4, 2)
    x[:, 2] = 1.0
    model = torch.nn.Sequential(LIF())
    with record_activity(model, samples=[2]) as records:
        model(x)
    assert records['0'].output.shape == (3, 1, 2)
    assert records['0'].output.sum() == 6


def test_slice_batch():
    batch = dict(inputs=torch.arange(6).reshape(3, 2), label=torch.tensor(
        [0, 1, 2]), names=['a', 'b', 'c'])
    part = slice_batch(batch, 1, 2)
    assert part['inputs'].tolist() == [[2, 3]]
    assert part['label'].tolist() == [1] and part['names'] == ['b']


# ---------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------
def test_figures_render_to_rgb_arrays():
    fig = figures.raster_figure({'a': raster(hand_spikes())}, 'x')
    img = figures.to_rgb(fig)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    # spikes are drawn in black: some pixels are (near) black
    assert (img.max(axis=2) < 40).any()
    for fig in (figures.rates_over_time_figure({'a': np.ones(4)}),
                figures.confusion_figure([[2, 1], [0, 3]], ['x', 'y']),
                figures.per_class_figure([50.0, float('nan')]),
                figures.histograms_figure({'v': np.arange(10)}),
                figures.firing_rates_figure({'l1': 0.1, 'l2': 0.0})):
        assert figures.to_rgb(fig).shape[2] == 3


# ---------------------------------------------------------------------------
# test report files
# ---------------------------------------------------------------------------
def test_test_report_files(tmp_path):
    metrics = {
        'accuracy/top1': 50.0,
        # class 0: 3 samples, 2 right; class 1: 1 sample, 0 right;
        # class 2: no sample
        'confusion_matrix': [[2, 1, 0], [1, 0, 0], [0, 0, 0]],
        'firing_rate/conv1': 0.25,
        'firing_rate/fc': 0.5,
        'firing_rate/mean': 0.375,
    }
    written = write_test_report(metrics, str(tmp_path), ['up', 'down',
                                                         'left'])
    names = sorted(p.split('/')[-1] for p in written)
    assert names == sorted([
        'confusion_matrix.csv', 'confusion_matrix.png', 'firing_rates.csv',
        'firing_rates.png', 'per_class_accuracy.csv', 'per_class_accuracy.png'
    ])
    rows = list(csv.reader(open(tmp_path / 'per_class_accuracy.csv')))
    assert rows[0] == ['class', 'name', 'samples', 'correct', 'accuracy']
    assert rows[1] == ['0', 'up', '3', '2', '66.6667']
    assert rows[2] == ['1', 'down', '1', '0', '0.0000']
    assert rows[3] == ['2', 'left', '0', '0', '']
    rows = list(csv.reader(open(tmp_path / 'confusion_matrix.csv')))
    assert rows[0][1:] == ['up', 'down', 'left']
    assert rows[1] == ['up', '2', '1', '0']
    rows = list(csv.reader(open(tmp_path / 'firing_rates.csv')))
    assert rows == [['layer', 'firing_rate'], ['conv1', '0.250000'],
                    ['fc', '0.500000']]
    with Image.open(tmp_path / 'confusion_matrix.png') as img:
        assert img.size[0] > 200 and img.size[1] > 200


def test_report_without_accuracy_writes_rates_only(tmp_path):
    written = write_test_report({'firing_rate/a': 0.1}, str(tmp_path))
    assert sorted(p.split('/')[-1] for p in written) == [
        'firing_rates.csv', 'firing_rates.png'
    ]


# ---------------------------------------------------------------------------
# event frames
# ---------------------------------------------------------------------------
def test_polarity_colours():
    frames = np.zeros((1, 2, 2, 2), np.float32)
    frames[0, 1, 0, 0] = 3  # ON only -> red
    frames[0, 0, 1, 1] = 3  # OFF only -> blue
    rgb = frames_to_rgb(frames)[0]
    assert rgb[0, 0].tolist() == [255, 0, 0]
    assert rgb[1, 1].tolist() == [0, 0, 255]
    assert rgb[0, 1].tolist() == [255, 255, 255]  # no event: white


def test_grey_and_bad_frames():
    grey = frames_to_rgb(np.array([[[[0.0, 2.0]]]]))  # [1, 1, 1, 2]
    assert grey[0, 0].tolist() == [[0, 0, 0], [255, 255, 255]]
    with pytest.raises(DataError, match='token ids'):
        frames_to_rgb(np.zeros((4, 3)))
    with pytest.raises(DataError, match='5 channels'):
        frames_to_rgb(np.zeros((1, 5, 2, 2)))


def test_gif_has_one_frame_per_step(tmp_path):
    frames = np.zeros((3, 2, 4, 4), np.float32)
    for t in range(3):
        frames[t, 1, t, t] = 1  # a different pixel per step
    path = save_gif(frames, str(tmp_path / 'a.gif'), min_size=16)
    with Image.open(path) as gif:
        assert gif.n_frames == 3
        assert gif.size == (16, 16)


# ---------------------------------------------------------------------------
# curves
# ---------------------------------------------------------------------------
def test_curves_join_resumed_runs(tmp_path):
    first = tmp_path / '20240101_000000' / 'vis_data'
    second = tmp_path / '20240102_000000' / 'vis_data'
    first.mkdir(parents=True)
    second.mkdir(parents=True)
    lines1 = [dict(loss=2.0, lr=0.1, epoch=1, iter=1, step=1),
              dict(loss=1.5, lr=0.1, epoch=1, iter=2, step=2),
              {'accuracy/top1': 40.0, 'step': 1}]
    lines2 = [dict(loss=1.0, lr=0.1, epoch=2, iter=3, step=3),
              {'accuracy/top1': 60.0, 'step': 2},
              {'spikes/rate/mean': 0.2, 'step': 3}]
    (first / 'scalars.json').write_text(
        '\n'.join(json.dumps(x) for x in lines1) + '\n')
    (second / 'scalars.json').write_text(
        '\n'.join(json.dumps(x) for x in lines2) + '\n')
    curves = read_curves(str(tmp_path))
    assert curves['loss'].x.tolist() == [1, 2, 3]
    assert curves['loss'].y.tolist() == [2.0, 1.5, 1.0]
    assert curves['loss'].axis == 'iteration'
    assert curves['accuracy/top1'].y.tolist() == [40.0, 60.0]
    assert curves['accuracy/top1'].axis == 'step'
    assert curves['spikes/rate/mean'].axis == 'iteration'
    assert 'iter' not in curves and 'epoch' not in curves


def test_curves_name_a_missing_dir(tmp_path):
    with pytest.raises(DataError, match='nowhere'):
        read_curves(str(tmp_path / 'nowhere'))
    with pytest.raises(DataError, match='vis_data'):
        read_curves(str(tmp_path))


# ---------------------------------------------------------------------------
# progress bars
# ---------------------------------------------------------------------------
class FakeTerminal(io.StringIO):

    def isatty(self):
        return True


def test_progress_is_silent_off_a_terminal():
    buf = io.StringIO()
    assert list(track(range(3), 'work', stream=buf)) == [0, 1, 2]
    assert buf.getvalue() == ''
    display = ProgressDisplay(stream=buf).start()
    task = display.add('x', total=2)
    display.advance(task)
    display.stop()
    assert task is None and buf.getvalue() == ''


def test_progress_draws_on_a_terminal():
    term = FakeTerminal()
    assert list(track(range(5), 'caching samples', stream=term)) == list(
        range(5))
    text = term.getvalue()
    assert 'caching samples' in text and '5/5' in text


def test_logger_lines_print_above_the_bar_and_are_restored():
    term = FakeTerminal()
    logger = logging.getLogger('bidl_train_test_progress')
    handler = logging.StreamHandler(term)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        # the handler writes to a stream that is not stdout: left alone
        with ProgressDisplay(stream=term, loggers=[logger]):
            assert handler.stream is term
        import sys
        handler.setStream(sys.stdout)
        with ProgressDisplay(stream=term, loggers=[logger]) as display:
            task = display.add('epoch 1/1', total=1)
            assert handler.stream is not sys.stdout
            logger.warning('a log line')
            display.advance(task)
        assert handler.stream is sys.stdout
        assert 'a log line' in term.getvalue()
    finally:
        logger.removeHandler(handler)


def test_per_class_report_counts_undecided_samples(tmp_path):
    """Scores of a class-0 sample tie at the top: the Accuracy metric has no
    prediction for it, so it is in no confusion row, but it is still one of
    class 0's samples and not a correct one (1 of 2 right: 50 %)."""
    from bidl_train.evaluation.metrics.classification import Accuracy
    metric = Accuracy(topk=(1, ), num_classes=2)
    metrics = metric.compute_metrics([
        dict(score=np.array([0.9, 0.1], np.float32), label=0),
        dict(score=np.array([0.5, 0.5], np.float32), label=0),
        dict(score=np.array([0.2, 0.8], np.float32), label=1),
    ])
    assert metrics['confusion_matrix'] == [[1, 0], [0, 1]]
    write_test_report(metrics, str(tmp_path), ['a', 'b'])
    rows = list(csv.reader(open(tmp_path / 'per_class_accuracy.csv')))
    assert rows[1] == ['0', 'a', '2', '1', '50.0000']
    assert rows[2] == ['1', 'b', '1', '1', '100.0000']


def test_membrane_replay_of_a_plastic_layer_names_nested_states():
    """A plastic layer's state nests its neuron's (``{'neuron': {'v'}}``);
    the replay names each tensor by its dotted path (it crashed on the
    nested dict, so the co-learning demo failed with the default hooks)."""
    from bidl_train.learning import PlasticFcLif
    layer = PlasticFcLif(3, 2, rule=dict(type='Hebbian', lr=0.0),
                         neuron=dict(type='LIF', theta=0.5))
    with torch.no_grad():
        layer.linear.weight.copy_(
            torch.tensor([[0.4, 0.0, 0.0], [0.0, 0.0, 0.0]]))
        layer.linear.bias.zero_()
    x = torch.tensor([1.0, 0.0, 0.0]).expand(3, 1, 3)  # [T, B, N]
    trace = membrane_trace(layer, x)
    v = [key for key in trace if key.split('.')[-1] == 'v']
    assert len(v) == 1 and '.' in v[0]
    # input current 0.4 + local weight 0 each step, theta 0.5, alpha 0.3:
    # u = 0.4 (v = 0.12), u = 0.52 fires (v = 0), u = 0.4 (v = 0.12)
    np.testing.assert_allclose(trace[v[0]][:, 0, 0].numpy(),
                               [0.12, 0.0, 0.12], atol=1e-6)


# ---------------------------------------------------------------------------
# which neurons a raster shows; the threshold on membrane histograms
# ---------------------------------------------------------------------------
def test_layer_raster_says_which_neurons():
    from bidl_train.visualization.spikes import layer_raster
    spikes = torch.zeros(3, 1, 16, 16, 16)  # 4096 neurons per sample
    spikes.view(3, 1, -1)[:, 0, 65] = 1  # neuron 65 = the 2nd kept row
    layer = layer_raster(spikes, max_neurons=64)
    # linspace(0, 4095, 64) = 0, 65, 130, ..., 4095 exactly
    np.testing.assert_array_equal(layer.indices, np.arange(0, 4096, 65))
    assert layer.grid[1].all() and not layer.grid[0].any()
    assert layer.describe() == ('64 of 4096 (16x16x16) neurons, evenly '
                                'spaced: 0, 65, 130, ..., 4095')
    assert layer_raster(hand_spikes()).describe() == 'neurons 0-2 (all 3)'


def test_raster_figure_names_layer_and_neuron_indices():
    from bidl_train.visualization.spikes import layer_raster
    spikes = torch.zeros(4, 1, 4096)
    fig = figures.raster_figure({
        'backbone.lif1': layer_raster(spikes, max_neurons=64),
        'head.lif': raster(hand_spikes()),  # a bare grid: every neuron
    })
    first, second = fig.axes
    assert first.get_title(loc='left').startswith(
        'backbone.lif1: 64 of 4096 neurons, evenly spaced: 0, 65, 130')
    assert second.get_title(loc='left').startswith(
        'head.lif: neurons 0-2 (all 3)')
    fig.canvas.draw()
    ticks = [t.get_text() for t in first.get_yticklabels()]
    # y ticks are neuron indices, not row numbers: the last row is 4095
    assert ticks[0] == '0' and ticks[-1] == '4095'
    assert first.get_ylabel() == 'neuron index'


def test_firing_threshold_is_read_from_the_neuron():
    from bidl_train.neurons import ALIF, Izhikevich
    from bidl_train.visualization.recording import firing_threshold
    lif = firing_threshold(LIF(theta=0.7))
    assert (lif.low, lif.high, lif.name) == (pytest.approx(0.7),
                                             pytest.approx(0.7), 'theta')
    assert lif.label() == 'theta = 0.7'
    assert 'adapts' in firing_threshold(ALIF(theta=0.3)).label()
    assert firing_threshold(Izhikevich()).low == 30.0
    per_channel = LIF(theta=torch.tensor([0.2, 0.6]), feature_shape=(2, ),
                      param_shape='channel')
    band = firing_threshold(per_channel)
    assert (band.low, band.high) == (pytest.approx(0.2), pytest.approx(0.6))
    assert not band.uniform


def test_membrane_thresholds_of_a_plastic_layer():
    from bidl_train.learning import PlasticFcLif
    from bidl_train.visualization.recording import membrane_thresholds
    layer = PlasticFcLif(3, 2, neuron=dict(type='LIF', theta=0.8))
    found = membrane_thresholds(layer, ['neuron.v', 'local.w', 'v'])
    assert list(found) == ['neuron.v']  # the layer itself has no theta
    assert found['neuron.v'].low == pytest.approx(0.8)


def test_membrane_histogram_has_a_line_at_theta():
    from bidl_train.visualization.recording import membrane_thresholds
    model = torch.nn.Sequential(LIF(theta=0.45))
    with record_activity(model, keep_inputs=True) as records:
        model(lif_input())
    trace = membrane_trace(records['0'].module, records['0'].input)
    thresholds = {f'0/{k}': v for k, v in membrane_thresholds(
        records['0'].module, trace).items()}
    assert list(thresholds) == ['0/v']
    fig = figures.histograms_figure(
        {'0/v': trace['v'].flatten().numpy()}, thresholds=thresholds)
    ax = fig.axes[0]
    at_theta = [line for line in ax.get_lines()
                if np.allclose(line.get_xdata(), 0.45)]
    assert len(at_theta) == 1
    assert at_theta[0].get_label() == 'theta = 0.45'
    assert [t.get_text() for t in ax.get_legend().get_texts()] == \
        ['theta = 0.45']
    # an entry without a threshold gets no line
    plain = figures.histograms_figure({'x': np.arange(5)}, thresholds={})
    assert not plain.axes[0].get_lines()


def test_observe_batch_keeps_each_layers_threshold():
    from bidl_train.visualization.observe import observe_batch

    class Tiny(torch.nn.Module):
        """The two calls observe_batch makes of a bidl-train model."""

        def __init__(self):
            super().__init__()
            self.first = LIF(theta=0.45)
            self.second = LIF(theta=0.2)

        def data_preprocessor(self, batch, training):
            return batch

        def forward(self, inputs, data_samples=None, mode='tensor'):
            return self.second(self.first(inputs)).mean(0)

    seen = observe_batch(Tiny(), dict(inputs=lif_input()), membrane=True)
    assert sorted(seen.thresholds) == ['first/v', 'second/v']
    assert seen.thresholds['first/v'].low == pytest.approx(0.45)
    assert seen.thresholds['second/v'].low == pytest.approx(0.2)
