"""Lowering coverage beyond ConvLifNet + LIF: IF and PLIF neurons.

Each kind is exported, the written files are run in their own runtime
(TorchScript, ONNX Runtime, the NIR file and Norse's importer) and compared
with the PyTorch model's own logits and spikes (forward hooks on its
neurons), never with the exporter's output.
"""
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope

from bidl_train.deploy import deploy, lower_model
from bidl_train.deploy.lower import LoweringError
from bidl_train.neurons import BaseNeuron
from bidl_train.registry import MODELS

init_default_scope('bidl_train')


def _pytorch(model, x):
    """Logits and per-neuron spikes of the PyTorch model itself."""
    spikes, handles = {}, []
    for name, module in model.named_modules():
        if isinstance(module, BaseNeuron):
            handles.append(module.register_forward_hook(
                lambda m, i, out, name=name: spikes.__setitem__(name, out)))
    with torch.no_grad():
        logits = model(x, mode='tensor')
    for handle in handles:
        handle.remove()
    return logits, spikes


def _conv_classifier(neuron):
    torch.manual_seed(3)
    model = MODELS.build(dict(
        type='SpikingClassifier',
        backbone=dict(type='ConvLifNet', in_channels=2, input_size=8,
                      channels=[4], pools=[None], fc=[16], neuron=neuron),
        head=dict(type='SpikingClsHead', in_features=16, num_classes=3)))
    model.backbone.layers[2].linear.weight.data *= 3  # the FC layer fires
    return model.eval()


def _events(shape, seed=5):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=gen) > 0.5).float()


def _run_torchscript(tmp_path, names, x):
    """Closed-loop run of ``step.pt`` and one call of ``unrolled.pt``."""
    init = np.load(tmp_path / 'initial_state.npz')
    batch = x.shape[1]
    states = [torch.from_numpy(np.repeat(init[n], batch, 0) if init[n].ndim
                               else init[n]) for n in names]
    step = torch.jit.load(str(tmp_path / 'step.pt'))
    with torch.no_grad():
        for x_t in x:
            outs = step(x_t, *states)
            states = list(outs[1:1 + len(names)])
        unrolled = torch.jit.load(str(tmp_path / 'unrolled.pt'))(x)
    return outs, unrolled


@pytest.mark.parametrize('neuron', [dict(type='IF', theta=1.0),
                                    dict(type='PLIF', tau=3.0)])
@pytest.mark.parametrize('target', ['torchscript', 'onnx', 'nir'])
def test_if_and_plif_round_trip(neuron, target, tmp_path):
    if target == 'onnx':
        pytest.importorskip('onnxruntime')
    if target == 'nir':
        pytest.importorskip('nir')
    model = _conv_classifier(neuron)
    if neuron['type'] == 'PLIF':  # a trained, non-initial leak
        for module in model.modules():
            if hasattr(module, 'w'):
                module.w.data.fill_(0.4)
    x = _events((8, 3, 2, 8, 8))
    logits, spikes = _pytorch(model, x)
    assert all(int(s.sum()) > 0 for s in spikes.values())
    report = deploy(model, target, x, str(tmp_path))
    ver = report['verification']
    assert report['status'] == 'verified'
    assert ver['spike_agreement_overall'] == 1.0
    assert {k[len('spikes.'):]: v['spikes'] for k, v in
            ver['spike_agreement'].items()} == {
                k: int(s.sum()) for k, s in spikes.items()}
    if target == 'torchscript':
        outs, unrolled = _run_torchscript(tmp_path, report['state_names'], x)
        torch.testing.assert_close(outs[0], logits, atol=1e-5, rtol=0)
        torch.testing.assert_close(unrolled, logits, atol=1e-5, rtol=0)


def test_if_maps_to_nir_if_and_norse_reproduces_it(tmp_path):
    nir = pytest.importorskip('nir')
    norse_torch = pytest.importorskip('norse.torch')
    model = _conv_classifier(dict(type='IF', theta=1.0))
    x = _events((8, 2, 2, 8, 8))
    logits, spikes = _pytorch(model, x)
    deploy(model, 'nir', x, str(tmp_path), verify_samples=False)
    graph = nir.read(str(tmp_path / 'model.nir'))
    ifs = [n for n in graph.nodes.values() if isinstance(n, nir.IF)]
    assert len(ifs) == 2
    # forward Euler at dt = 1e-4: v += dt * r * I must add I itself
    np.testing.assert_allclose(ifs[0].r * 1e-4, 1.0, rtol=1e-6)
    np.testing.assert_array_equal(ifs[0].v_threshold, 1.0)
    for b in range(x.shape[1]):
        net = norse_torch.from_nir(graph, dt=1e-4)
        state, outs = None, []
        with torch.no_grad():
            for t in range(x.shape[0]):
                out, state = net(x[t, b], state)
                outs.append(out.reshape(-1))
        torch.testing.assert_close(torch.stack(outs).mean(0), logits[b],
                                   atol=1e-5, rtol=0)


def test_plif_leak_is_sigmoid_of_w():
    model = _conv_classifier(dict(type='PLIF', tau=2.0))
    neuron = model.backbone.layers[0].neuron
    neuron.w.data.fill_(1.5)
    node = lower_model(model).layers[1].node
    assert float(node.alpha) == pytest.approx(1 / (1 + np.exp(-1.5)))


def test_other_neuron_kinds_are_refused_by_name():
    model = _conv_classifier(dict(type='ALIF'))
    with pytest.raises(LoweringError,
                       match=r'backbone\.layers\.0\.neuron.*ALIF'):
        lower_model(model)
