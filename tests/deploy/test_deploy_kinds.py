"""Lowering coverage beyond ConvLifNet + LIF: IF and PLIF neurons.

Each kind is exported, the written files are run in their own runtime
(TorchScript, ONNX Runtime, the NIR file and Norse's importer) and compared
with the PyTorch model's own logits and spikes (forward hooks on its
neurons), never with the exporter's output.
"""
import numpy as np
import pytest
import torch
from helpers.deploy_runner import (UnknownNeuron, assert_norse_reproduces_logits,
                           logits_and_spikes, plastic_classifier)
from mmengine.registry import init_default_scope

from bidl_train.deploy import deploy, lower_model
from bidl_train.deploy.lower import LoweringError
from bidl_train.learning.rules import STDP, build_rule
from bidl_train.registry import MODELS

init_default_scope('bidl_train')


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
    logits, spikes = logits_and_spikes(model, x)
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
    pytest.importorskip('norse.torch')
    model = _conv_classifier(dict(type='IF', theta=1.0))
    x = _events((8, 2, 2, 8, 8))
    logits, spikes = logits_and_spikes(model, x)
    deploy(model, 'nir', x, str(tmp_path), verify_samples=False)
    graph = nir.read(str(tmp_path / 'model.nir'))
    ifs = [n for n in graph.nodes.values() if isinstance(n, nir.IF)]
    assert len(ifs) == 2
    # forward Euler at dt = 1e-4: v += dt * r * I must add I itself
    np.testing.assert_allclose(ifs[0].r * 1e-4, 1.0, rtol=1e-6)
    np.testing.assert_array_equal(ifs[0].v_threshold, 1.0)
    assert_norse_reproduces_logits(graph, x, logits)


def test_plif_leak_is_sigmoid_of_w():
    model = _conv_classifier(dict(type='PLIF', tau=2.0))
    neuron = model.backbone.layers[0].neuron
    neuron.w.data.fill_(1.5)
    node = lower_model(model).layers[1].node
    assert float(node.alpha) == pytest.approx(1 / (1 + np.exp(-1.5)))


def test_unknown_neuron_kinds_are_refused_by_name():
    model = _conv_classifier(dict(type='LIF'))
    model.backbone.layers[0].neuron = UnknownNeuron()
    with pytest.raises(LoweringError, match=r'backbone\.layers\.0\.neuron:'
                       r' neuron kind UnknownNeuron'):
        lower_model(model)


# -- branching backbones: ResNetLif, SEWResNet (TorchScript and ONNX) -------
def _resnet_classifier(backbone):
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='SpikingClassifier', backbone=backbone,
        head=dict(type='SpikingClsHead', in_features=32, num_classes=3)))
    for module in model.modules():  # non-trivial running statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _run_onnx_step(path, names, x, init):
    """Closed-loop run of ``step.onnx``: every output of the last step."""
    ort = pytest.importorskip('onnxruntime')
    session = ort.InferenceSession(str(path))
    batch = x.shape[1]
    feeds = [np.repeat(init[n], batch, 0) if init[n].ndim else init[n]
             for n in names]
    outputs = [o.name for o in session.get_outputs()]
    spikes = {}
    for x_t in x.numpy():
        outs = session.run(None, dict(zip(['x'] + names, [x_t] + feeds)))
        feeds = outs[1:1 + len(names)]
        for name, value in zip(outputs, outs):
            if name.startswith('spikes.'):
                spikes.setdefault(name[len('spikes.'):], []).append(value)
    return outs[0], {k: np.stack(v) for k, v in spikes.items()}


RESNETS = {
    'resnet10_cifar': dict(type='ResNetLif', depth=10, in_channels=2,
                           stem='cifar', width=4),
    'resnet10_imagenet_lite': dict(type='ResNetLif', depth=10,
                                   in_channels=2, stem='imagenet', width=4,
                                   lite=True),
    'sew10_add': dict(type='SEWResNet', depth=10, in_channels=2, cnf='ADD',
                      width=4),
    'sew10_iand': dict(type='SEWResNet', depth=10, in_channels=2,
                       cnf='IAND', width=4),
}


@pytest.mark.parametrize('target, name', [
    ('torchscript', 'resnet10_cifar'), ('onnx', 'resnet10_imagenet_lite'),
    ('onnx', 'sew10_add'), ('torchscript', 'sew10_iand')])
def test_residual_backbones_round_trip(target, name, tmp_path):
    if target == 'onnx':
        pytest.importorskip('onnxruntime')
    model = _resnet_classifier(RESNETS[name])
    x = _events((3, 2, 2, 8, 8))
    logits, spikes = logits_and_spikes(model, x)
    assert sum(int(s.sum()) for s in spikes.values()) > 0
    report = deploy(model, target, x, str(tmp_path))
    assert report['status'] == 'verified'
    ver = report['verification']
    assert ver['spike_agreement_overall'] == 1.0
    # every spiking neuron of the model is exported and compared
    assert {k[len('spikes.'):]: v['spikes'] for k, v in
            ver['spike_agreement'].items()} == {
                k: int(s.sum()) for k, s in spikes.items()
                if k.startswith('backbone')}
    names = report['state_names']
    # the exported states are the model's own step states, by name
    _, state = model.step(x[0], None)
    from bidl_train.deploy.verify import flatten_state
    assert set(names) == set(flatten_state(state))
    init = np.load(tmp_path / 'initial_state.npz')
    if target == 'torchscript':
        outs, unrolled = _run_torchscript(tmp_path, names, x)
        torch.testing.assert_close(outs[0], logits, atol=1e-5, rtol=0)
        torch.testing.assert_close(unrolled, logits, atol=1e-5, rtol=0)
    else:
        got, got_spikes = _run_onnx_step(tmp_path / 'step.onnx', names, x,
                                         init)
        np.testing.assert_allclose(got, logits.numpy(), atol=1e-5)
        for layer, s in got_spikes.items():
            np.testing.assert_array_equal(s, spikes[layer].numpy())


def test_residual_block_nir_cannot_express_refused_by_nir(tmp_path):
    # ResNetLif and SEW ADD export to NIR (tests/deploy/test_deploy_nir_graph.py);
    # SEW's IAND multiplies spikes, which no NIR node does
    pytest.importorskip('nir')
    from bidl_train.deploy.base import UnsupportedFeature
    model = _resnet_classifier(RESNETS['sew10_iand'])
    with pytest.raises(UnsupportedFeature, match=r'layer backbone\.stages\.0'
                       r'\.0: SEW connect function IAND'):
        deploy(model, 'nir', _events((2, 1, 2, 8, 8)),
               str(tmp_path / 'out'))
    assert not (tmp_path / 'out').exists()


# -- FastTextLif: token ids, embedding, padding mask --------------------------
def _fasttext_classifier():
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='SpikingClassifier',
        backbone=dict(type='FastTextLif', vocab_size=50, embedding_dim=8,
                      hidden_dim=16),
        head=dict(type='SpikingClsHead', in_features=16, num_classes=2)))
    model.backbone.linear.weight.data *= 3  # the hidden layer fires
    return model.eval()


@pytest.mark.parametrize('target', ['torchscript', 'onnx'])
def test_fasttext_round_trip_with_padding(target, tmp_path):
    if target == 'onnx':
        ort = pytest.importorskip('onnxruntime')
    model = _fasttext_classifier()
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(1, 50, (7, 3), generator=gen)
    tokens[:3, 0] = 0  # leading padding: no input current
    logits, spikes = logits_and_spikes(model, tokens)
    assert int(spikes['backbone.neuron'].sum()) > 0
    report = deploy(model, target, tokens, str(tmp_path), labels=[0, 1, 1])
    assert report['status'] == 'verified'
    assert report['verification']['spike_agreement_overall'] == 1.0
    assert report['inputs'][0]['shape'] == [1]
    # other T and batch through the unrolled graph, integer ids in
    longer = torch.randint(0, 50, (11, 4), generator=gen)
    with torch.no_grad():
        want = model(longer, mode='tensor').numpy()
    if target == 'torchscript':
        with torch.no_grad():
            got = torch.jit.load(str(tmp_path / 'unrolled.pt'))(
                longer).numpy()
    else:
        session = ort.InferenceSession(str(tmp_path / 'unrolled.onnx'))
        got = session.run(None, {'x_seq': longer.numpy()})[0]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_fasttext_refused_by_nir(tmp_path):
    pytest.importorskip('nir')
    from bidl_train.deploy.base import UnsupportedFeature
    with pytest.raises(UnsupportedFeature, match='FastTextLif'):
        deploy(_fasttext_classifier(), 'nir', torch.ones(3, 1).long(),
               str(tmp_path / 'out'))


# -- plastic layers ---------------------------------------------------------
_HEBBIAN = dict(type='Hebbian')


@pytest.mark.parametrize('layer', ['PlasticFcLif', 'PlasticConv2dLif'])
@pytest.mark.parametrize('target', ['torchscript', 'onnx'])
def test_persistent_plastic_layer_folds_local_weight(layer, target,
                                                     tmp_path):
    if target == 'onnx':
        pytest.importorskip('onnxruntime')
    model = plastic_classifier(layer, 'persistent', _HEBBIAN, units=16,
                               channels=4)
    index = 2 if layer == 'PlasticFcLif' else 0
    plastic = model.backbone[index]
    gen = torch.Generator().manual_seed(1)
    plastic.local_weight.copy_(torch.randn(
        plastic.local_weight.shape, generator=gen) * 0.3)
    x = _events((5, 2, 2, 8, 8))
    # the plastic layer's own output (its spikes) and the logits
    seen = {}
    handle = plastic.register_forward_hook(
        lambda m, i, out: seen.__setitem__('spikes', out))
    with torch.no_grad():
        logits = model(x, mode='tensor')
    handle.remove()
    # the local weight matters: without it the logits differ
    saved = plastic.local_weight.clone()
    plastic.local_weight.zero_()
    with torch.no_grad():
        assert not torch.allclose(model(x, mode='tensor'), logits)
    plastic.local_weight.copy_(saved)
    report = deploy(model, target, x, str(tmp_path))
    assert report['status'] == 'verified'
    assert any('W_g + L' in note for note in report['folded'])
    names = report['state_names']
    assert f'backbone.{index}.neuron.v' in names
    init = np.load(tmp_path / 'initial_state.npz')
    source = f'backbone.{index}.neuron'
    if target == 'torchscript':
        step = torch.jit.load(str(tmp_path / 'step.pt'))
        states = [torch.from_numpy(np.repeat(init[n], 2, 0) if init[n].ndim
                                   else init[n]) for n in names]
        position = report['spike_names'].index(f'spikes.{source}')
        got_spikes = []
        with torch.no_grad():
            for x_t in x:
                outs = step(x_t, *states)
                states = list(outs[1:1 + len(names)])
                got_spikes.append(outs[1 + len(names) + position])
        got, got_spikes = outs[0], torch.stack(got_spikes)
        torch.testing.assert_close(got, logits, atol=1e-5, rtol=0)
        assert torch.equal(got_spikes, seen['spikes'])
    else:
        got, got_spikes = _run_onnx_step(tmp_path / 'step.onnx', names, x,
                                         init)
        np.testing.assert_allclose(got, logits.numpy(), atol=1e-5)
        np.testing.assert_array_equal(got_spikes[source],
                                      seen['spikes'].numpy())
    assert int(seen['spikes'].sum()) > 0


def test_plastic_layer_needing_labels_at_inference_gets_a_teacher():
    """RewardSTDP reads labels through the graph's teacher input (see
    test_deploy_plastic); a rule of one's own that needs labels is refused
    by layer and rule name."""
    model = plastic_classifier('PlasticFcLif', 'fast', _HEBBIAN, units=16)
    model.backbone[2].rule = build_rule(
        dict(type='RewardSTDP', num_classes=4, group_size=4), 'test')
    assert lower_model(model).teacher_layers == ['backbone.2']

    class LabelledSTDP(STDP):
        needs_teacher = True

    model.backbone[2].rule = LabelledSTDP()
    with pytest.raises(LoweringError, match=r'backbone\.2: PlasticFcLif '
                       r'learns at inference with rule LabelledSTDP, which '
                       r'needs a teaching signal; .* for RewardSTDP only'):
        lower_model(model)


def test_lowering_a_model_in_training_mode_leaves_it_untouched():
    """lower_model runs a branching backbone once to find its neurons: on
    an eval-mode copy, so a model still in training mode keeps its
    BatchNorm running statistics (the export uses them as they are) and
    the run needs no batch of several samples."""
    model = _resnet_classifier(RESNETS['resnet10_cifar']).train()
    bn = model.backbone.stem.bn
    bn.running_mean.uniform_(-0.5, 0.5)
    stats = {k: v.clone() for k, v in model.state_dict().items()}
    lowered = lower_model(model, _events((1, 1, 2, 8, 8))[0])
    for key, value in model.state_dict().items():
        assert torch.equal(value, stats[key]), key
    assert model.training
    node = lowered.layers[0].node
    assert torch.equal(node.module.stem.bn.running_mean, stats[
        'backbone.stem.bn.running_mean'])
