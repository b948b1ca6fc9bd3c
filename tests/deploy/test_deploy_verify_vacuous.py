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


# -- threshold ties: synchronised, not cascaded ------------------------------
def _tie_net():
    """FcLif 4 -> 3 (theta 0.5, alpha 0.3, hard reset) and a readout.

    Neuron 1 gets exactly 0.5 from input 0 (a tie with theta at step 1)
    and 0.4 from input 1 (steps 2, 3: fires there only if it kept the
    0.15 of an unfired step 1); neuron 0 gets 0.2 from input 2 at every
    step and never comes near theta (its membrane stays below 0.29)."""
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
        fc.weight[1, 0] = 0.5
        fc.weight[1, 1] = 0.4
        fc.weight[0, 2] = 0.2
        fc.bias.zero_()
    x = torch.zeros(4, 2, 4)
    x[1, :, 0] = 1.0  # step 1: neuron 1 meets theta exactly
    x[2:, :, 1] = 1.0
    x[:, :, 2] = 1.0
    return model, x


class _Nudged:
    """A deployed runtime whose stored membrane of one neuron gets
    ``amount`` added before step ``at`` (of the verification run): as if
    its graph had summed in another order, by ``amount``."""

    def __init__(self, runtime, export, at, neuron, amount):
        self.runtime, self.at = runtime, at
        self.neuron, self.amount, self.calls = neuron, amount, 0
        self.index = export.state_names.index('backbone.0.v')

    def step(self, x_t, states, **given):
        if self.calls == self.at:
            states = list(states)
            states[self.index] = states[self.index].copy()
            states[self.index][:, self.neuron] += self.amount
        self.calls += 1
        return self.runtime.step(x_t, states, **given)

    def unrolled(self, x_seq, **given):
        return None  # the nudge lives in the step graph only


def _deploy_nudged(monkeypatch, tmp_path, neuron, amount, **verify_args):
    from bidl_train.deploy import api, verify as verify_module
    from bidl_train.deploy.torchscript import TorchScriptTarget
    load = TorchScriptTarget.load
    monkeypatch.setattr(
        TorchScriptTarget, 'load', lambda self, export: _Nudged(
            load(self, export), export, 1, neuron, amount))
    if verify_args:
        monkeypatch.setattr(api, 'verify', lambda *a, **k: verify_module.
                            verify(*a, **k, **verify_args))
    model, x = _tie_net()
    return deploy(model, 'torchscript', x, str(tmp_path))


def test_the_tie_is_real_in_the_pytorch_model():
    model, x = _tie_net()
    ties = threshold_ties(model, x)
    assert ties == {'backbone.0.neuron': dict(count=2, first_step=1,
                                              closest=0.0)}


def test_a_tie_without_synchronisation_cascades(monkeypatch, tmp_path):
    # the behaviour before: one spike flipped at the tie (1e-7 above
    # theta in the deployed graph) and every later step differs
    report = _deploy_nudged(monkeypatch, tmp_path, 1, 1e-7,
                            sync_ties=False)
    assert report['status'] == 'MISMATCH'
    ver = report['verification']
    # unfired in PyTorch, step 1 keeps alpha * 0.5 = 0.15 (deployed: reset)
    assert ver['max_abs_diff']['backbone.0.v'] == pytest.approx(0.15)
    # and at steps 2 and 3 PyTorch fires where the deployed graph does not
    assert ver['spike_mismatches']['backbone.0.neuron']['count'] == 2 * 3
    assert ver['ties_synchronised']['synchronised'] == 0


def test_a_tie_is_synchronised_and_reported(monkeypatch, tmp_path):
    report = _deploy_nudged(monkeypatch, tmp_path, 1, 1e-7)
    ver = report['verification']
    assert report['status'] == 'verified', ver['failed_checks']
    ties = ver['ties_synchronised']
    # one spike per sample (2 samples), met by both PyTorch forms
    assert ties['synchronised'] == 2
    assert ties['by_form'] == {'multi-step': 2, 'step': 2}
    assert {(e['layer'], e['step'], e['count'], e['margin'])
            for e in ties['events']} == {('backbone.0.neuron', 1, 2, 0.0)}
    assert ver['spike_mismatches'] == {}
    assert ver['max_abs_diff']['backbone.0.v'] == 0.0
    assert ver['spike_agreement_overall'] == 1.0
    on_disk = json.load(open(tmp_path / 'report.json'))
    assert on_disk['verification']['ties_synchronised'] == ties
    summary = format_summary(report)
    assert 'threshold ties synchronised: 2 spike(s)' in summary
    assert 'backbone.0.neuron step 1 (2x, margin 0)' in summary


def test_no_tie_no_synchronisation(tmp_path):
    model, x = _tie_net()
    report = deploy(model, 'torchscript', x, str(tmp_path))
    ver = report['verification']
    assert report['status'] == 'verified'
    assert ver['ties_synchronised']['synchronised'] == 0
    assert 'threshold ties synchronised: 0' in format_summary(report)


def test_a_flipped_spike_far_from_the_threshold_still_fails(
        monkeypatch, tmp_path):
    # neuron 0's membrane is 0.26 at step 1: pushed to 0.56 it fires, 0.24
    # from any tie
    report = _deploy_nudged(monkeypatch, tmp_path, 0, 0.3)
    assert report['status'] == 'MISMATCH'
    ver = report['verification']
    assert ver['ties_synchronised']['synchronised'] == 0
    found = ver['spike_mismatches']['backbone.0.neuron']
    # both samples at step 1 only: the deployed reset to 0 there, PyTorch
    # kept 0.078, and neither reaches theta again
    assert found['first_step'] == 1 and found['count'] == 2
    assert found['closest'] == pytest.approx(0.5 - 0.26, abs=1e-6)
    checks = [f['check'] for f in ver['failed_checks']]
    assert 'max |deployed - pytorch| spikes.backbone.0.neuron' in checks
    summary = format_summary(report)
    assert ('FAILED max |deployed - pytorch| spikes.backbone.0.neuron: 1 '
            '(limit 0.0001): 2 spike(s) differ away from a threshold tie, '
            'first at step 1') in summary
