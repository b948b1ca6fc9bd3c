"""Verification that cannot pass vacuously, and a MISMATCH that says which
check failed, by how much, and whether a threshold tie explains it."""
import json

import pytest
import torch
from mmengine.registry import init_default_scope

from bidl_train.deploy import deploy
from bidl_train.deploy.api import FP32_LOGIT_ATOL, failed_checks
from bidl_train.deploy.report import format_summary
from bidl_train.deploy.verify import threshold_ties
from bidl_train.registry import MODELS

init_default_scope('bidl_train')


def _net(fc_neuron, conv_neuron=None):
    """Conv2dLif 4 -> FcLif 6 -> readout, on [T, B, 2, 8, 8]."""
    torch.manual_seed(0)
    conv_neuron = conv_neuron or dict(type='LIF', theta=0.3)
    return MODELS.build(dict(
        type='SpikingClassifier',
        backbone=dict(type='SpikingSequential', layers=[
            dict(type='Conv2dLif', in_channels=2, out_channels=4, pool=2,
                 neuron=conv_neuron),
            dict(type='Flatten'),
            dict(type='FcLif', in_features=64, out_features=6,
                 neuron=fc_neuron)]),
        head=dict(type='SpikingClsHead', in_features=6,
                  num_classes=3))).eval()


def _frames():
    gen = torch.Generator().manual_seed(1)
    return (torch.rand(5, 2, 2, 8, 8, generator=gen) > 0.4).float()


def test_a_layer_that_never_spiked_is_a_warning(tmp_path, capsys):
    # a threshold no current reaches: the layer is silent, so its perfect
    # "agreement" says nothing about its firing
    model = _net(dict(type='LIF', theta=1e6))
    report = deploy(model, 'torchscript', _frames(), str(tmp_path))
    ver = report['verification']
    assert report['status'] == 'verified'
    assert ver['spike_agreement']['spikes.backbone.2.neuron']['spikes'] == 0
    assert ver['spike_agreement']['spikes.backbone.0.neuron']['spikes'] > 0
    silent = [w for w in ver['warnings'] if 'never spiked' in w]
    assert len(silent) == 1 and silent[0].startswith('backbone.2.neuron')
    on_disk = json.load(open(tmp_path / 'report.json'))
    assert on_disk['verification']['warnings'] == ver['warnings']
    summary = format_summary(report)
    assert 'WARNING: backbone.2.neuron never spiked' in summary


def test_a_layer_that_spiked_everywhere_is_a_warning(tmp_path):
    # a negative threshold is refused by the LIF, so the current does it:
    # a huge bias fires every neuron at every step
    model = _net(dict(type='LIF'))
    with torch.no_grad():
        model.backbone[2].linear.bias.fill_(1e4)
    report = deploy(model, 'torchscript', _frames(), str(tmp_path))
    warnings = report['verification']['warnings']
    assert any(w.startswith('backbone.2.neuron spiked at every neuron')
               for w in warnings)
    assert not any(w.startswith('backbone.0.neuron') for w in warnings)


def test_no_warning_when_every_layer_fires_sometimes(tmp_path):
    report = deploy(_net(dict(type='LIF', theta=0.2)), 'torchscript',
                    _frames(), str(tmp_path))
    assert report['verification']['warnings'] == []


def test_analog_layers_get_no_spike_agreement(tmp_path):
    # LIAF: the analog layer outputs its membrane, its spike tensor is not
    # what the next layer sees
    model = _net(dict(type='LIF', mode='analog'))
    report = deploy(model, 'torchscript', _frames(), str(tmp_path / 'mix'))
    ver = report['verification']
    assert list(ver['spike_agreement']) == ['spikes.backbone.0.neuron']
    assert ver['analog_layers'] == ['backbone.2.neuron']
    assert 'analog layers not compared: backbone.2.neuron' in \
        format_summary(report)
    # all analog: no agreement at all (it used to say 1.0)
    model = _net(dict(type='LIF', mode='analog'),
                 dict(type='LIF', mode='analog'))
    report = deploy(model, 'torchscript', _frames(), str(tmp_path / 'all'))
    ver = report['verification']
    assert ver['spike_agreement_overall'] is None
    assert ver['spike_agreement'] == {}
    assert report['status'] == 'verified'  # outputs and states still agree
    assert any('no spike agreement was measured' in w
               for w in ver['warnings'])
    assert 'spike agreement: not measured' in format_summary(report)


def _ver(**diffs):
    return dict(samples=2, steps=3, max_abs_diff=diffs,
                reference_max_abs={'backbone.0.v': 4.0},
                spike_agreement_overall=0.99, warnings=[])


def test_failed_checks_name_the_check_and_the_amount():
    ver = _ver(y=1e-6, **{'backbone.0.v': 0.15})
    failures = failed_checks(ver)
    assert [f['check'] for f in failures] == [
        'max |deployed - pytorch| backbone.0.v', 'spike agreement']
    assert failures[0]['value'] == 0.15
    # the state's tolerance is relative to its largest value (4)
    assert failures[0]['limit'] == pytest.approx(4 * FP32_LOGIT_ATOL)
    assert failures[1]['value'] == 0.99
    assert failed_checks(_ver(y=float('nan'))) != []  # NaN is no pass


def test_summary_prints_each_failed_check():
    ver = dict(_ver(**{'backbone.0.v': 0.15}), spike_agreement={},
               top1=dict(agreement=1.0), threshold_ties={
                   'backbone.0.neuron': dict(count=3, first_step=2,
                                             closest=6e-8)})
    ver['failed_checks'] = failed_checks(ver)
    report = dict(target='onnx', precision='fp32', status='MISMATCH',
                  files={}, inputs=[], folded=[], notes=[],
                  verification=ver)
    summary = format_summary(report)
    assert 'FAILED max |deployed - pytorch| backbone.0.v: 0.15 (limit ' \
        '0.0004)' in summary
    assert 'FAILED spike agreement: 0.99 (limit 0.999)' in summary
    assert 'backbone.0.neuron 3x from step 2' in summary


def test_threshold_ties_found_where_the_membrane_meets_theta():
    """A current of exactly theta (0.5) at the first step is a tie; zero
    input gives none."""
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='SpikingClassifier',
        backbone=dict(type='SpikingSequential', layers=[
            dict(type='FcLif', in_features=4, out_features=3)]),
        head=dict(type='SpikingClsHead', in_features=3,
                  num_classes=3))).eval()
    fc = model.backbone[0].linear
    with torch.no_grad():
        fc.weight.zero_()
        fc.weight[1, 0] = 0.5  # neuron 1 gets exactly 0.5 from input 0
        fc.bias.zero_()
    x = torch.zeros(3, 2, 4)
    x[1, :, 0] = 1.0  # step 1, both samples
    ties = threshold_ties(model, x)
    assert ties == {'backbone.0.neuron': dict(count=2, first_step=1,
                                              closest=0.0)}
    assert threshold_ties(model, torch.zeros(3, 2, 4)) == {}
