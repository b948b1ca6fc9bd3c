"""NIR export of BIDL's BatchNorms: the input BatchNorm and the BatchNorm on
the membrane (``norm_state``), on the flagship config ``configs/
dvs_gesture.py`` itself.

BIDL's LIF with membrane BatchNorm at inference, per channel c:
``u_t = a_c (x_t + v_{t-1}) + b_c``, spike if ``u_t > theta``, ``r_t = (1 -
s_t) u_t``, ``v_t = alpha r_t``. So ``u_t = (a_c alpha) r_{t-1} + a_c x_t +
b_c``: a LIF on ``u`` with leak ``a_c alpha``, driven by the current ``a_c
x_t + b_c``. The tests derive the NIR parameters from the BatchNorm's
running statistics by hand and run the exported file in snnTorch and Norse,
which must reproduce every spike and the logits.

Exactness here means: equal up to float rounding, so a spike may only differ
where PyTorch's membrane lies within rounding of the threshold (a tie). The
spike-equality tests first check that no membrane of the verification run
comes within ``TIE`` of the threshold, so "0 mismatches" is the right
expectation for them (and a failure is a wrong mapping, not a tie).
"""
import json

import numpy as np
import pytest
import torch
from helpers.deploy_runner import assert_importer_reproduces
from mmengine.registry import init_default_scope

from bidl_train.cli.common import load_config
from bidl_train.deploy import deploy
from bidl_train.deploy.base import UnsupportedFeature
from bidl_train.registry import MODELS

nir = pytest.importorskip('nir')
init_default_scope('bidl_train')

DT = 1e-4
T, B = 6, 2
#: no membrane of the verification runs may come closer to the threshold
TIE = 1e-6


def _set_batchnorms(model, seed=0):
    """Non-trivial running statistics and affine parameters in every
    BatchNorm (a BatchNorm fresh from init is the identity up to eps, which
    would hide a wrong fold). The membrane scales a = w / sqrt(var + eps)
    stay in about [0.25, 1.5] so every leak a * alpha lies in [0, 1)."""
    gen = torch.Generator().manual_seed(seed)

    def uniform(t, low, high):
        t.copy_(low + (high - low) * torch.rand(t.shape, generator=gen))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                uniform(module.weight, 0.5, 1.5)
                uniform(module.bias, 0.0, 0.4)
                uniform(module.running_mean, -0.2, 0.2)
                uniform(module.running_var, 1.0, 4.0)
    return model.eval()


def _flagship():
    """The model of configs/dvs_gesture.py (input BatchNorm, three
    Conv2dLif and two FcLif with membrane BatchNorm, population head)."""
    cfg = load_config('configs/dvs_gesture.py')
    torch.manual_seed(0)
    return _set_batchnorms(MODELS.build(cfg.model))


def _events(steps=T, batch=B, seed=1):
    """DVS-like frames: Poisson event counts per polarity and pixel."""
    gen = torch.Generator().manual_seed(seed)
    rate = torch.rand(steps, batch, 2, 40, 40, generator=gen) * 1.5
    return torch.poisson(rate, generator=gen)


def _membrane_margins(model, x):
    """The smallest ``|u - theta|`` of every LIF of ``model`` on ``x`` (its
    multi-step forward), by layer."""
    margins, patched = {}, []
    for name, module in model.named_modules():
        if hasattr(module, 'neuronal_fire') and hasattr(module, 'theta'):
            def fire(u, threshold, module=module, name=name):
                margin = float((u - threshold).abs().min())
                margins[name] = min(margins.get(name, margin), margin)
                return type(module).neuronal_fire(module, u, threshold)
            module.neuronal_fire = fire
            # the fused kernels fire inside the kernel: step through the loop
            patched.append((module, getattr(module, 'backend', None)))
            if hasattr(module, 'backend'):
                module.backend = 'loop'
    try:
        with torch.no_grad():
            model(x, mode='tensor')
    finally:
        for module, backend in patched:
            del module.neuronal_fire
            if backend is not None:
                module.backend = backend
    return margins


@pytest.fixture(scope='module')
def flagship(tmp_path_factory):
    """The flagship model, its inputs, the verified export's report and
    the graph read back."""
    model, x = _flagship(), _events()
    out = tmp_path_factory.mktemp('dvs_gesture_nir')
    report = deploy(model, 'nir', x, str(out), labels=[0, 1])
    return model, x, report, out


def test_flagship_exports_and_verifies(flagship):
    model, x, report, out = flagship
    assert report['status'] == 'verified'
    ver = report['verification']
    assert ver['spike_agreement_overall'] == 1.0
    assert ver['max_abs_diff']['logits_after_T_steps'] <= 1e-6
    # not vacuous: every layer spiked, none always
    for name, stats in ver['spike_agreement'].items():
        assert 0 < stats['spikes'] < stats['neurons_x_steps'], name


def _scale_shift(bn):
    """``(a, b)`` of an eval BatchNorm, written out: ``a (u - mean) /
    ... = a u + b``."""
    weight, bias = bn.weight.detach().double(), bn.bias.detach().double()
    a = weight / torch.sqrt(bn.running_var.double() + bn.eps)
    return a, bias - bn.running_mean.double() * a


def test_flagship_graph_is_the_hand_derived_mapping(flagship):
    model, _, _, out = flagship
    graph = nir.read(str(out / 'model.nir'))
    nodes = graph.nodes
    layers = model.backbone.layers
    # input BatchNorm: the first conv pads with zeros, so the shift cannot
    # be folded into it: a channel-diagonal 1x1 conv with bias
    s, t = _scale_shift(layers[0].module)
    first = nodes['n0']
    assert isinstance(first, nir.Conv2d)
    np.testing.assert_allclose(first.weight[:, :, 0, 0], np.diag(s.numpy()),
                               rtol=1e-6)
    np.testing.assert_allclose(first.bias, t.numpy(), rtol=1e-6, atol=1e-7)
    assert ('input', 'n0') in graph.edges
    # each Conv2dLif/FcLif: a and b of its membrane BatchNorm in the
    # weights before it, its neuron a CubaLIF with tau_syn = dt
    order = sorted((k for k in nodes if k[1:].isdigit()),
                   key=lambda k: int(k[1:]))  # the file sorts n10 < n2
    convs = [k for k in order[1:]
             if isinstance(nodes[k], (nir.Conv2d, nir.Affine))]
    cubas = [k for k in order if isinstance(nodes[k], nir.CubaLIF)]
    assert len(convs) == len(cubas) == 5
    for layer, conv_key, lif_key in zip(
            [m for m in layers if hasattr(m, 'neuron')], convs, cubas):
        synapse = getattr(layer, 'conv', None) or layer.linear
        neuron = layer.neuron
        a, b = _scale_shift(neuron.norm)
        shape = (-1, ) + (1, ) * (synapse.weight.dim() - 1)
        want_w = synapse.weight.detach().double() * a.reshape(shape)
        want_b = synapse.bias.detach().double() * a + b
        np.testing.assert_allclose(nodes[conv_key].weight, want_w.numpy(),
                                   rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(nodes[conv_key].bias, want_b.numpy(),
                                   rtol=1e-5, atol=1e-7)
        lif = nodes[lif_key]
        alpha, theta = float(neuron.alpha), float(neuron.theta)
        d = (a * alpha).numpy().reshape((-1, ) + (1, ) * (
            lif.tau_mem.ndim - 1))
        np.testing.assert_allclose(lif.tau_mem, np.broadcast_to(
            DT / (1 - d), lif.tau_mem.shape), rtol=1e-6)
        np.testing.assert_allclose(lif.r, lif.tau_mem / DT, rtol=1e-6)
        np.testing.assert_allclose(lif.tau_syn, DT, rtol=1e-7)
        np.testing.assert_array_equal(lif.w_in, 1.0)
        np.testing.assert_array_equal(lif.v_threshold, theta)
        np.testing.assert_array_equal(lif.v_leak, 0.0)
        np.testing.assert_array_equal(lif.v_reset, 0.0)
    # population head (one neuron per class, scale 1): no node, the class
    # neurons' spikes are the per-step logits
    assert graph.edges.count((cubas[-1], 'output')) == 1


def _run_importer(importer, graph, model, x):
    """Every spike of every layer and the logits from ``importer``'s
    import of ``graph`` must equal PyTorch's (shared with the residual
    graph tests)."""
    with open(graph['manifest']) as f:
        keys = [n['node'] for n in json.load(f)['neurons']]
    layers = [name[len('spikes.'):] for name in graph['spikes']]
    assert_importer_reproduces(importer, nir.read(graph['file']),
                                dict(zip(layers, keys)), model, x)


@pytest.mark.parametrize('importer', ['snntorch', 'norse_from_nir'])
def test_flagship_nir_import_reproduces_every_spike(flagship, importer):
    model, x, report, out = flagship
    margins = _membrane_margins(model, x)
    assert len(margins) == 5 and min(margins.values()) > TIE, margins
    _run_importer(importer, dict(file=str(out / 'model.nir'),
                                 manifest=str(out / 'manifest.json'),
                                 spikes=report['spike_names']), model, x)


def _small(layers, neuron=None, seed=0):
    """A small classifier on [T, B, 2, 8, 8] frames."""
    torch.manual_seed(seed)
    model = MODELS.build(dict(
        type='SpikingClassifier',
        backbone=dict(type='SpikingSequential', layers=layers),
        head=dict(type='SpikingClsHead', in_features=24, num_classes=3)))
    return _set_batchnorms(model, seed)


def _norm_lif(**kwargs):
    return dict(type='LIF', norm_state=True, **kwargs)


def _small_conv(padding=1, size=8, **neuron):
    side = size - 2 + 2 * padding  # 3x3 conv
    return _small([
        dict(type='TimeFold', module=dict(type='BatchNorm2d',
                                          num_features=2)),
        dict(type='Conv2dLif', in_channels=2, out_channels=4,
             padding=padding, norm=False, neuron=_norm_lif(**neuron)),
        dict(type='Flatten'),
        dict(type='FcLif', in_features=4 * side * side, out_features=24,
             neuron=_norm_lif(**neuron))])


def test_input_batchnorm_folds_into_an_unpadded_conv(tmp_path):
    """With no zero padding every tap of the conv sees the shifted input:
    the input BatchNorm folds into the conv, ``w' = w s``, ``b' = b +
    sum(w t)``, and no extra node is written."""
    model = _small_conv(padding=0)
    x = _events(steps=6, batch=2)[..., :8, :8]
    report = deploy(model, 'nir', x, str(tmp_path))
    assert report['status'] == 'verified'
    graph = nir.read(str(tmp_path / 'model.nir'))
    conv = graph.nodes['n1']  # n0, the BatchNorm, has no node
    assert 'n0' not in graph.nodes and ('input', 'n1') in graph.edges
    s, t = _scale_shift(model.backbone[0].module)
    layer = model.backbone[1]
    a, b = _scale_shift(layer.neuron.norm)
    w = layer.conv.weight.detach().double()
    want_w = w * s.reshape(1, -1, 1, 1) * a.reshape(-1, 1, 1, 1)
    want_b = (layer.conv.bias.detach().double() + (w.sum((2, 3)) @ t)) * a \
        + b
    np.testing.assert_allclose(conv.weight, want_w.numpy(), rtol=1e-5)
    np.testing.assert_allclose(conv.bias, want_b.numpy(), rtol=1e-5,
                               atol=1e-7)


@pytest.mark.parametrize('importer', ['snntorch', 'norse_from_nir'])
def test_small_membrane_bn_net_imports_exactly(tmp_path, importer):
    """Both folds of the input BatchNorm, per-channel leaks, checked in
    both importers."""
    for padding in (0, 1):
        model = _small_conv(padding=padding)
        x = _events(steps=8, batch=2, seed=3)[..., :8, :8]
        out = tmp_path / f'p{padding}'
        report = deploy(model, 'nir', x, str(out))
        assert report['status'] == 'verified'
        assert min(_membrane_margins(model, x).values()) > TIE
        _run_importer(importer, dict(file=str(out / 'model.nir'),
                                     manifest=str(out / 'manifest.json'),
                                     spikes=report['spike_names']),
                      model, x)


def _refusal(model, tmp_path):
    x = _events(steps=3, batch=2)[..., :8, :8]
    with pytest.raises(UnsupportedFeature) as err:
        deploy(model, 'nir', x, str(tmp_path / 'out'))
    assert not (tmp_path / 'out').exists()  # refused before writing
    return str(err.value)


@pytest.mark.parametrize('weight, feature', [
    (-0.5, 'leak a * alpha = -'),   # a < 0: the membrane flips sign
    (8.0, 'outside [0, 1)'),        # a alpha >= 1: it grows
])
def test_leak_outside_unit_interval_refused_naming_the_channel(
        weight, feature, tmp_path):
    model = _small_conv()
    with torch.no_grad():
        model.backbone[1].neuron.norm.weight[2] = weight
    message = _refusal(model, tmp_path)
    assert 'backbone.1.neuron' in message and 'channel 2' in message
    assert feature in message


@pytest.mark.parametrize('neuron, feature', [
    (dict(v0=-0.2), 'v0'),
    (dict(beta=0.1), 'beta'),
    (dict(reset='soft'), 'soft reset'),
    (dict(mode='analog'), 'analog'),
])
def test_membrane_bn_options_without_exact_form_refused(neuron, feature,
                                                        tmp_path):
    message = _refusal(_small_conv(**neuron), tmp_path)
    assert 'backbone.1.neuron' in message and feature in message


def test_membrane_bn_without_a_weighted_layer_before_it_refused(tmp_path):
    """``a`` and ``b`` go into the conv/linear right before the neuron; a
    bare neuron layer has none."""
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='SpikingClassifier',
        backbone=dict(type='SpikingSequential', layers=[
            dict(type='Flatten'),
            dict(type='LIF', norm_state=True, feature_shape=(128, )),
            dict(type='FcLif', in_features=128, out_features=24)]),
        head=dict(type='SpikingClsHead', in_features=24,
                  num_classes=3))).eval()
    message = _refusal(model, tmp_path)
    assert 'backbone.1' in message and 'no conv/linear' in message


def test_membrane_bn_in_a_residual_backbone_refused(tmp_path):
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='SpikingClassifier',
        backbone=dict(type='ResNetLif', depth=10, in_channels=2,
                      stem='cifar', width=4,
                      neuron=dict(type='LIF', norm_state=True)),
        head=dict(type='SpikingClsHead', in_features=32,
                  num_classes=3))).eval()
    message = _refusal(model, tmp_path)
    assert 'norm_state' in message and 'branching backbone' in message
