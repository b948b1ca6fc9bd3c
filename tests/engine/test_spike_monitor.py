"""SpikeMonitorHook, ProgressBarHook and bidl-test's report on a tiny run.

One tiny training run (2 epochs of one iteration on synthetic DVS gestures)
is shared by the tests of this module; the TensorBoard event file it writes
is read back with TensorBoard's own reader.
"""
import csv
import glob
import io
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from tensorboard.backend.event_processing import event_accumulator as ea

from bidl_train.engine.hooks.progress_bar import ProgressBarHook
from bidl_train.engine.hooks.spike_monitor import SpikeMonitorHook
from bidl_train.errors import ConfigError
from bidl_train.neurons.base import BaseNeuron
from bidl_train.visualization.spikes import LayerSpikeStats

from helpers.paths import REPO
DEMO = osp.join(REPO, 'configs', 'demo', 'synthetic_gesture.py')


def tiny_config(tmp_path):
    data = tmp_path / 'data'
    text = f'''
_base_ = [{DEMO!r}]
_rep = dict(type='EventFrames', num_steps=4, split_by='number', size=16)
_gen = dict(data_root={str(data)!r}, users_train=1, users_test=1,
            conditions=1, num_classes=2, representation=_rep)
train_dataloader = dict(batch_size=2, dataset=_gen)
val_dataloader = dict(batch_size=2, dataset=_gen)
test_dataloader = dict(batch_size=2, dataset=_gen)
model = dict(backbone=dict(input_size=16, channels=(4, ), pools=(2, ),
                           strides=(1, ), fc=(8, )),
             head=dict(in_features=8, num_classes=2))
train_cfg = dict(max_epochs=2)
param_scheduler = []
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(save_best=None))
custom_hooks = [dict(type='SpikeMonitorHook', interval=1)]
'''
    path = tmp_path / 'tiny.py'
    path.write_text(text)
    return str(path)


class FakeTerminal(io.StringIO):

    def isatty(self):
        return True


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    from bidl_train.engine import build_runner
    tmp = tmp_path_factory.mktemp('spike_monitor')
    cfg_path = tiny_config(tmp)
    cfg = Config.fromfile(cfg_path)
    cfg.work_dir = str(tmp / 'work')
    runner = build_runner(cfg)
    terminal, pipe = FakeTerminal(), io.StringIO()
    runner.register_hook(ProgressBarHook(stream=terminal))
    runner.register_hook(ProgressBarHook(stream=pipe))
    runner.train()
    vis_dir = glob.glob(osp.join(cfg.work_dir, '*', 'vis_data'))[0]
    events = glob.glob(osp.join(vis_dir, 'events.out.tfevents.*'))[0]
    acc = ea.EventAccumulator(events, size_guidance={
        ea.SCALARS: 0, ea.IMAGES: 0, ea.HISTOGRAMS: 0})
    acc.Reload()
    layers = [name for name, m in runner.model.named_modules()
              if isinstance(m, BaseNeuron)]
    return dict(cfg=cfg_path, work=cfg.work_dir, vis=vis_dir, tb=acc,
                layers=layers, terminal=terminal.getvalue(),
                pipe=pipe.getvalue(), tmp=tmp)


def test_mmengine_scalars_are_logged(run):
    scalars = run['tb'].Tags()['scalars']
    for tag in ('loss', 'lr', 'accuracy/top1'):
        assert tag in scalars


def test_spike_statistics_every_iteration(run):
    tb, layers = run['tb'], run['layers']
    assert len(layers) == 2  # one Conv2dLif, one FcLif
    for item in ('rate', 'silent', 'saturated'):
        for layer in layers + ['mean']:
            events = tb.Scalars(f'spikes/{item}/{layer}')
            # interval=1: one record per training iteration (2 in all)
            assert [e.step for e in events] == [1, 2]
            assert all(0.0 <= e.value <= 1.0 for e in events)
        per_layer = [tb.Scalars(f'spikes/{item}/{layer}')[0].value
                     for layer in layers]
        mean = tb.Scalars(f'spikes/{item}/mean')[0].value
        assert mean == pytest.approx(np.mean(per_layer), abs=1e-6)


def test_validation_images_and_membrane_histograms(run):
    tb = run['tb']
    tags = tb.Tags()
    for name in ('confusion_matrix', 'spike_raster', 'spike_rate_over_time',
                 'membrane_histogram'):
        assert name in tags['images']
        images = tb.Images(name)
        # render_interval=5 (the default): of 2 validations only the
        # training's last one draws
        assert [i.step for i in images] == [2]
        assert images[0].width > 200 and images[0].height > 200
    for layer in run['layers']:
        hist = tb.Histograms(f'membrane/{layer}/v')
        assert [h.step for h in hist] == [2]
        # T=4 steps * one sample * the layer's neurons
        assert hist[0].histogram_value.num > 0
    # the local backend keeps the same images as PNG files
    for name in ('confusion_matrix', 'spike_raster'):
        assert osp.isfile(osp.join(run['vis'], 'vis_image', f'{name}_2.png'))
        assert not osp.exists(osp.join(run['vis'], 'vis_image',
                                       f'{name}_1.png'))


class FakeLoop:
    max_epochs = 5


class FakeRunner:
    """What ``_renders_now`` reads of a runner."""
    rank = 0

    def __init__(self, loop):
        self._train_loop = loop
        self.epoch = 0


def test_render_interval_draws_every_nth_and_the_last_validation(
        monkeypatch):
    hook = SpikeMonitorHook(render_interval=2)
    drawn = []
    monkeypatch.setattr(hook, '_log_sample',
                        lambda runner, step: drawn.append(step))
    runner = FakeRunner(FakeLoop())
    for epoch in range(1, 6):
        runner.epoch = epoch
        hook.after_val_epoch(runner, metrics={})
    assert drawn == [2, 4, 5]
    # validating without training (bidl-test, val only) always draws
    hook = SpikeMonitorHook(render_interval=3)
    monkeypatch.setattr(hook, '_log_sample',
                        lambda runner, step: drawn.append(('val', step)))
    runner = FakeRunner({'type': 'EpochBasedTrainLoop'})
    hook.after_val_epoch(runner, metrics={})
    assert drawn[-1] == ('val', 0)


def test_progress_bars_on_a_terminal_only(run):
    text = run['terminal']
    assert 'epoch 1/2' in text and 'epoch 2/2' in text
    assert 'validation' in text and 'eta' in text
    assert run['pipe'] == ''


def test_stats_scalars_follow_the_log_choice():
    hook = SpikeMonitorHook(log=('rate', 'saturated'))
    stats = {
        'a': LayerSpikeStats(rate=0.2, silent=0.5, saturated=0.1,
                             neurons=4, binary=True),
        'b': LayerSpikeStats(rate=0.4, silent=0.0, saturated=float('nan'),
                             neurons=4, binary=False),
    }
    scalars = hook.stats_scalars(stats)
    assert scalars == pytest.approx({
        'spikes/rate/a': 0.2, 'spikes/rate/b': 0.4, 'spikes/rate/mean': 0.3,
        # the analog layer has no saturation: left out, also of the mean
        'spikes/saturated/a': 0.1, 'spikes/saturated/mean': 0.1})


@pytest.mark.parametrize('kwargs, needle', [
    (dict(log=('rate', 'rastr')), 'rastr'),
    (dict(interval=0), 'interval'),
    (dict(sample_index=-1), 'sample_index'),
    (dict(render_interval=0), 'render_interval'),
    (dict(render_interval=True), 'render_interval'),
])
def test_bad_options_are_named(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        SpikeMonitorHook(**kwargs)


def test_bidl_test_writes_report_and_misclassified_rasters(run, capsys):
    """A checkpoint whose readout always says class 0.

    The test split holds one sample per class, so the confusion matrix is
    [[1, 0], [1, 0]] and exactly the class-1 sample is misclassified.
    """
    from bidl_train.cli.test import main
    from bidl_train.engine import safe_load
    ckpt = safe_load(osp.join(run['work'], 'epoch_2.pth'))
    state = ckpt['state_dict']
    state['head.fc.weight'] = torch.zeros_like(state['head.fc.weight'])
    state['head.fc.bias'] = torch.tensor([5.0, 0.0])
    fixed = osp.join(run['tmp'], 'always0.pth')
    torch.save(ckpt, fixed)
    work = osp.join(run['tmp'], 'test_work')
    show = osp.join(run['tmp'], 'show')
    main([run['cfg'], fixed, '--work-dir', work, '--show-dir', show])
    out = capsys.readouterr().out
    assert 'report (6 files) written to' in out
    report = osp.join(work, 'test_report')
    rows = list(csv.reader(open(osp.join(report, 'confusion_matrix.csv'))))
    assert [r[1:] for r in rows[1:]] == [['1', '0'], ['1', '0']]
    rows = list(csv.reader(open(osp.join(report, 'per_class_accuracy.csv'))))
    assert [(r[2], r[3], r[4]) for r in rows[1:]] == [
        ('1', '1', '100.0000'), ('1', '0', '0.0000')]
    rows = list(csv.reader(open(osp.join(report, 'firing_rates.csv'))))
    assert [r[0] for r in rows[1:]] == run['layers']
    for name in ('confusion_matrix.png', 'per_class_accuracy.png',
                 'firing_rates.png'):
        assert osp.getsize(osp.join(report, name)) > 1000
    rasters = sorted(glob.glob(osp.join(show, '*.png')))
    assert len(rasters) == 1
    assert '_true-1-' in rasters[0] and '_pred-0-' in rasters[0]
    # the JSON of the metrics is still written where it was
    metrics = json.load(open(osp.join(work, 'test_metrics.json')))['metrics']
    assert metrics['accuracy/top1'] == 50.0


# ----------------------------------------------------------------------
# the per-layer statistics: same numbers as a per-neuron reference
# ----------------------------------------------------------------------
class _Net(torch.nn.Module):
    """A conv layer, a LIF called three times on different currents, and an
    analog LIF whose output (u - theta) takes both signs."""

    def __init__(self):
        super().__init__()
        from bidl_train.layers import Conv2dLif
        from bidl_train.neurons import LIF
        self.conv = Conv2dLif(2, 3, neuron=dict(type='LIF', theta=0.3))
        self.lif = LIF(alpha=0.5, theta=0.5)
        self.analog = LIF(theta=0.5, mode='analog', memb_mode=1, act=None)

    def forward(self, frames, currents):
        self.conv(frames)
        for scale in (1.0, 0.5, 0.0):  # three calls of the same layer
            self.lif(currents * scale)
        return self.analog(currents - 0.2)


def _net_inputs():
    g = torch.Generator().manual_seed(0)
    frames = (torch.rand(4, 3, 2, 6, 6, generator=g) < 0.3).float()
    # per neuron: 2.0 fires at every step (saturated), 0 never (silent),
    # the others some of the time
    currents = torch.tensor([2.0, 0.0, 0.4, 0.3, 0.7, 0.0]).repeat(4, 3, 1)
    currents[:, 1, 3] = 0.0  # neuron 3 silent in sample 1 only
    return frames, currents


def _reference(outputs):
    """LayerSpikeStats of the calls ``outputs`` of one layer, neuron by
    neuron in plain Python (float64), averaged over the calls."""
    per_call = []
    for out in outputs:
        values = out.double().flatten(2).numpy()  # [T, B, N]
        neurons = values.shape[2]
        series = [values[:, :, n].ravel().tolist() for n in range(neurons)]
        binary = all(v in (0.0, 1.0) for s in series for v in s)
        silent = sum(all(v == 0 for v in s) for s in series) / neurons
        saturated = (sum(all(v == 1 for v in s) for s in series) / neurons
                     if binary else float('nan'))
        rate = sum(sum(s) for s in series) / (neurons * len(series[0]))
        per_call.append((rate, silent, saturated, neurons, binary))
    calls = len(per_call)
    return LayerSpikeStats(
        rate=sum(c[0] for c in per_call) / calls,
        silent=sum(c[1] for c in per_call) / calls,
        saturated=sum(c[2] for c in per_call) / calls,
        neurons=per_call[0][3], binary=all(c[4] for c in per_call))


def test_layer_statistics_match_a_per_neuron_reference():
    from bidl_train.engine.hooks.spike_monitor import (observe_layer_stats,
                                                       read_layer_stats)
    from bidl_train.models.monitor import hooked_spike_sources
    net = _Net()
    outputs = {}

    def keep(name):
        return lambda module, args, out: outputs.setdefault(
            name, []).append(out.detach().clone())

    with torch.no_grad(), hooked_spike_sources(net, keep), \
            observe_layer_stats(net) as sums:
        net(*_net_inputs())
    stats = read_layer_stats(sums)
    assert list(stats) == ['conv.neuron', 'lif', 'analog']
    assert [len(outputs[name]) for name in stats] == [1, 3, 1]
    for name, got in stats.items():
        want = _reference(outputs[name])
        assert (got.neurons, got.binary) == (want.neurons, want.binary)
        assert got.rate == pytest.approx(want.rate, rel=1e-6, abs=1e-9)
        assert got.silent == pytest.approx(want.silent, abs=1e-12)
        if want.binary:
            assert got.saturated == pytest.approx(want.saturated, abs=1e-12)
        else:
            assert np.isnan(got.saturated)
    # by hand (alpha 0.5, theta 0.5, 4 steps): currents x1 leave 0 and 0
    # silent, 2.0 and 0.7 saturated; x0.5 leave 0, 0.2, 0.15, 0 silent and
    # 1.0 saturated; x0 all silent. The mean of the three calls, not the
    # pairwise merge (which gave the last call half the weight: 0.75)
    assert stats['lif'].silent == pytest.approx((2 / 6 + 4 / 6 + 1) / 3)
    assert stats['lif'].saturated == pytest.approx((2 / 6 + 1 / 6 + 0) / 3)
    # the analog layer (u - theta) is never exactly 0: never "silent"
    assert stats['analog'].silent == 0 and not stats['analog'].binary


def test_binary_is_decided_exactly():
    from bidl_train.engine.hooks.spike_monitor import layer_stats
    spikes = torch.zeros(2, 1, 3)
    spikes[:, 0, 0] = 1
    spikes[0, 0, 1] = -0.0  # still 0
    cases = {
        'spikes': (spikes, True),
        'half precision spikes': (spikes.half(), True),
        'integer spikes': (spikes.long(), True),
        'one value just below 1': (spikes.index_put(
            (torch.tensor([1]), torch.tensor([0]), torch.tensor([0])),
            torch.tensor(1 - 2**-24)), False),
        'one value just above 1': (spikes + torch.tensor(
            [[[2**-23, 0, 0]], [[0, 0, 0]]]), False),
        'a NaN': (spikes.index_put((torch.tensor([0]), torch.tensor([0]),
                                    torch.tensor([2])),
                                   torch.tensor(float('nan'))), False),
        'an Inf': (spikes * float('inf'), False),
        'a tiny value': (spikes + 1e-45, False),
    }
    for case, (tensor, binary) in cases.items():
        values, neurons, got = layer_stats(tensor)
        assert got == binary, case
        assert neurons == 3
    values, _, _ = layer_stats(spikes)
    assert values.tolist() == pytest.approx([2 / 6, 2 / 3, 1 / 3])
    # +1 and -1 in the same neuron: sums to 0, yet not silent
    analog = torch.tensor([[[1.0, 0.0]], [[-1.0, 0.0]]])
    values, _, binary = layer_stats(analog)
    assert not binary
    rate, silent, saturated = values.tolist()
    assert (rate, silent) == (0.0, 0.5) and np.isnan(saturated)


def test_statistics_read_a_spiking_output_once():
    """The cost: the statistics of a spiking layer touch its whole output
    in one operation (about ten before), three when the values must show
    whether they are spikes; the rest works on one number per neuron."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from bidl_train.engine.hooks.spike_monitor import (_emits_spikes,
                                                       layer_stats)
    from bidl_train.neurons import LIF, Izhikevich

    class FullSizeOps(TorchDispatchMode):

        def __init__(self, size):
            super().__init__()
            self.size, self.ops = size, []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            tensors = [a for a in args if isinstance(a, torch.Tensor)]
            if any(t.numel() == self.size for t in tensors) and \
                    func.__name__ not in ('detach.default', 'view.default',
                                          '_unsafe_view.default'):
                self.ops.append(func.__name__)
            return func(*args, **(kwargs or {}))

    spikes = (torch.rand(4, 8, 16, 5, 5) < 0.3).float()
    for binary, passes in ((True, 1), (None, 3)):
        with FullSizeOps(spikes.numel()) as mode:
            layer_stats(spikes, binary=binary)
        assert len(mode.ops) == passes, mode.ops
    # the hook trusts the output of a neuron in spike mode only
    assert _emits_spikes(LIF())
    assert not _emits_spikes(LIF(mode='analog'))
    assert not _emits_spikes(Izhikevich())
