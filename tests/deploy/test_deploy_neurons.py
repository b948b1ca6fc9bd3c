"""Deploying the other neuron kinds (ALIF, CubaLIF, LIFPlus, Izhikevich)
and the Spikformer backbone to TorchScript and ONNX.

The written files run by themselves (``deploy_runner``) and are compared,
step by step, with the PyTorch model's own ``step`` outputs and states (by
name) and its spikes (forward hooks), never with the exporter's output.
"""
import numpy as np
import pytest
import torch
from helpers.deploy_runner import (UnknownNeuron, assert_matches_model,
                           pytorch_reference, run_step_files)
from mmengine.registry import init_default_scope

from bidl_train.deploy import deploy, lower_model
from bidl_train.deploy.base import UnsupportedFeature
from bidl_train.deploy.lower import LoweringError
from bidl_train.deploy.verify import flatten_state
from bidl_train.registry import MODELS

init_default_scope('bidl_train')

NEURONS = {
    'ALIF': dict(type='ALIF', rho=0.8, beta_a=0.5, reset='soft'),
    'CubaLIF': dict(type='CubaLIF', alpha_syn=0.6),
    'LIFPlus': dict(type='LIFPlus', input_accum='COBA', rev_volt=True,
                    refractory='AR', refractory_steps=2, adaptation='SBT',
                    spike_init='QDI'),
    'LIFPlus_RR_EXI': dict(type='LIFPlus', formulation='accumulating',
                           input_accum='COBE',
                           refractory='RR', adaptation='ADT',
                           spike_init='EXI', decay='EXD'),
    'Izhikevich': dict(type='Izhikevich', preset='FS'),
}


def _conv_classifier(neuron, gain=3.0, fc_gain=None):
    torch.manual_seed(3)
    model = MODELS.build(dict(
        type='SpikingClassifier',
        backbone=dict(type='ConvLifNet', in_channels=2, input_size=6,
                      channels=[3], pools=[None], fc=[8], neuron=neuron),
        head=dict(type='SpikingClsHead', in_features=8, num_classes=3)))
    model.backbone.layers[0].conv.weight.data *= gain
    model.backbone.layers[2].linear.weight.data *= fc_gain or gain
    return model.eval()


def _events(shape, scale=1.0, seed=5):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=gen) > 0.5).float() * scale


@pytest.mark.parametrize('kind, target', [
    (kind, target) for kind in NEURONS for target in ('torchscript', 'onnx')
    if kind != 'LIFPlus_RR_EXI' or target == 'onnx'])
def test_neuron_kind_round_trip(kind, target, tmp_path):
    if target == 'onnx':
        pytest.importorskip('onnxruntime')
    # Izhikevich works in mV: its input is a current of tens of mV/ms.
    # ONNX Runtime's conv rounds differently from PyTorch's (~1e-7), and
    # this LIFPlus (quadratic initiation, reversal voltage) amplifies
    # membrane differences along the steps: mildly at gain 2 (~1e-6 after
    # 5 steps), to ~2e-5 at gain 3
    izhikevich = kind == 'Izhikevich'
    gain = {'Izhikevich': 30.0, 'LIFPlus': 2.0}.get(kind, 3.0)
    model = _conv_classifier(NEURONS[kind], gain,
                             fc_gain=300.0 if izhikevich else None)
    x = _events((5, 2, 2, 6, 6), scale=20.0 if izhikevich else 1.0)
    logits, spikes, steps = pytorch_reference(model, x)
    assert all(int(s.sum()) > 0 for s in spikes.values())  # real spikes
    report = deploy(model, target, x, str(tmp_path))
    assert report['status'] == 'verified'
    assert report['verification']['spike_agreement_overall'] == 1.0
    # every state tensor of the neuron is named as in model.step's state
    neuron = model.backbone.layers[0].neuron
    assert report['state_names'] == (
        [f'backbone.0.{n}' for n in neuron.state_names] +
        [f'backbone.2.{n}' for n in neuron.state_names] +
        ['head.sum', 'head.count'])
    init = np.load(tmp_path / 'initial_state.npz')
    fresh = neuron.init_state(torch.zeros(1, 3, 6, 6))
    for name in neuron.state_names:
        np.testing.assert_array_equal(init[f'backbone.0.{name}'],
                                      fresh[name].numpy())
    if izhikevich:  # starts at rest, not at zero
        assert (init['backbone.0.v'] == -65).all()
    got = run_step_files(tmp_path, target, x)
    # Izhikevich's membrane (tens of mV) grows a difference several-fold
    # per step near threshold (dv'/dv = 1 + dt (0.08 v + 5)): ONNX
    # Runtime's rounding reaches ~3e-5 of the membrane's range in 5 steps
    assert_matches_model(got, logits, spikes, steps,
                         state_tol=1e-4 if izhikevich else 1e-5)


def test_analog_neuron_exports_no_spikes_and_state_bytes_count_all_states(
        tmp_path):
    pytest.importorskip('onnxruntime')
    neuron = dict(type='ALIF', mode='analog', memb_mode=1)
    model = _conv_classifier(neuron)
    model.backbone.layers[2].neuron = MODELS.build(dict(type='ALIF'))
    x = _events((4, 2, 2, 6, 6))
    lowered = lower_model(model)
    assert lowered.spike_names == ['spikes.backbone.layers.2.neuron']
    logits, spikes, steps = pytorch_reference(model, x)
    for precision in ('fp32', 'fp16'):
        report = deploy(model, 'onnx', x, str(tmp_path / precision),
                        precision=precision)
        state = flatten_state(model.step(x[0, :1])[1])
        size = 2 if precision == 'fp16' else 4
        assert report['resources']['state_bytes'] == size * sum(
            t.numel() for t in state.values())
        # v and a of 3x6x6 + 8 neurons
        assert report['resources']['neurons'] == 3 * 6 * 6 + 8
    ver = report['verification']  # fp16: measured, close
    assert ver['spike_agreement_overall'] >= 0.95
    assert_matches_model(run_step_files(tmp_path / 'fp32', 'onnx', x),
                         logits, spikes, steps)


def test_int8_keeps_the_neuron_states_fp32(tmp_path):
    pytest.importorskip('onnxruntime')
    import onnx
    model = _conv_classifier(NEURONS['CubaLIF'])
    x = _events((4, 2, 2, 6, 6))
    report = deploy(model, 'onnx', x, str(tmp_path), precision='int8')
    assert report['verification']['spike_agreement_overall'] >= 0.95
    graph = onnx.load(str(tmp_path / 'step.onnx')).graph
    int8 = [t for t in graph.initializer
            if t.data_type == onnx.TensorProto.INT8]
    assert len(int8) == 3  # conv, fc, head
    states = {i.name: i.type.tensor_type.elem_type for i in graph.input}
    assert states['backbone.0.i'] == onnx.TensorProto.FLOAT


# -- branching backbones with these neurons; Spikformer --------------------
def _branching_classifier(backbone, features=16):
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='SpikingClassifier', backbone=backbone,
        head=dict(type='SpikingClsHead', in_features=features,
                  num_classes=3)))
    for module in model.modules():  # trained-looking statistics, and gain
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(1.0, 3.0)
    return model.eval()


BRANCHING = {
    'resnet_alif': (dict(type='ResNetLif', depth=10, in_channels=2,
                         stem='cifar', width=2, neuron=NEURONS['ALIF']), 16),
    'spikformer_lif': (dict(type='Spikformer', in_channels=2, dim=8,
                            depth=1, heads=2, mlp_ratio=2,
                            pool_stages=2), 8),
    'spikformer_cuba': (dict(type='Spikformer', in_channels=2, dim=8,
                             depth=1, heads=2, mlp_ratio=2, pool_stages=2,
                             neuron=NEURONS['CubaLIF']), 8),
}


@pytest.mark.parametrize('target, name', [
    ('onnx', 'resnet_alif'), ('torchscript', 'spikformer_lif'),
    ('onnx', 'spikformer_cuba')])
def test_branching_backbone_round_trip(target, name, tmp_path):
    if target == 'onnx':
        pytest.importorskip('onnxruntime')
    backbone, features = BRANCHING[name]
    model = _branching_classifier(backbone, features)
    x = _events((3, 2, 2, 8, 8))
    logits, spikes, steps = pytorch_reference(model, x)
    assert sum(int(s.sum()) > 0 for s in spikes.values()) >= \
        len(spikes) // 2  # most neuron layers fire
    report = deploy(model, target, x, str(tmp_path))
    assert report['status'] == 'verified'
    assert report['verification']['spike_agreement_overall'] == 1.0
    assert set(report['state_names']) == set(steps[0]) - {'y'}
    assert_matches_model(run_step_files(tmp_path, target, x), logits,
                         spikes, steps)
    if name == 'spikformer_cuba':  # the ONNX Loop takes another T, batch
        import onnxruntime as ort
        longer = _events((5, 3, 2, 8, 8), seed=9)
        with torch.no_grad():
            want = model(longer, mode='tensor').numpy()
        got = ort.InferenceSession(str(tmp_path / 'unrolled.onnx')).run(
            None, {'x_seq': longer.numpy()})[0]
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_unknown_neuron_inside_a_branching_backbone_is_refused_by_name():
    model = _branching_classifier(BRANCHING['spikformer_lif'][0], 8)
    model.backbone.blocks[0].attn.q.sn = UnknownNeuron()
    with pytest.raises(LoweringError, match=r'layer backbone\.blocks\.0\.'
                       r'attn\.q\.sn: neuron kind UnknownNeuron'):
        lower_model(model, _events((1, 1, 2, 8, 8))[0])


def test_nir_refuses_the_kinds_it_cannot_express_by_layer(tmp_path):
    pytest.importorskip('nir')
    model = _conv_classifier(NEURONS['ALIF'])
    with pytest.raises(UnsupportedFeature,
                       match=r'layer backbone\.layers\.0\.neuron'):
        deploy(model, 'nir', _events((2, 1, 2, 6, 6)), str(tmp_path / 'o'))
    assert not (tmp_path / 'o').exists()
