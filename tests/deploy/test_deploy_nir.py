"""NIR target: spike-exact round trip, refusals by name, and the snnTorch
importer (optional; skipped when snnTorch is not installed)."""
import numpy as np
import pytest
import torch
from helpers.deploy_runner import assert_norse_reproduces_logits, logits_and_spikes
from mmengine.registry import init_default_scope

from bidl_train.deploy import deploy
from bidl_train.deploy.base import UnsupportedFeature
from bidl_train.registry import MODELS

nir = pytest.importorskip('nir')
init_default_scope('bidl_train')


def _model(pool=None, neuron=None, alpha=0.3, theta=0.5):
    neuron = neuron or dict(type='LIF', alpha=alpha, theta=theta)
    torch.manual_seed(3)
    model = MODELS.build(dict(
        type='SpikingClassifier',
        backbone=dict(type='ConvLifNet', in_channels=2, input_size=8,
                      channels=[4], pools=[pool], fc=[16], neuron=neuron),
        head=dict(type='SpikingClsHead', in_features=16, num_classes=3)))
    return model.eval()


def _inputs(T=8, B=3):
    gen = torch.Generator().manual_seed(5)
    return (torch.rand(T, B, 2, 8, 8, generator=gen) > 0.5).float()


def test_nir_graph_follows_the_mapping(tmp_path):
    alpha, theta = 0.25, 0.4
    model = _model(alpha=alpha, theta=theta)
    x = _inputs()
    report = deploy(model, 'nir', x, str(tmp_path), labels=[0, 1, 2])
    assert report['status'] == 'verified'
    assert report['verification']['spike_agreement_overall'] == 1.0
    graph = nir.read(str(tmp_path / 'model.nir'))
    kinds = [type(n).__name__ for n in graph.nodes.values()]
    # the head flattens its [16] input too (a no-op Flatten)
    assert sorted(kinds) == sorted(['Input', 'Conv2d', 'LIF', 'Flatten',
                                    'Affine', 'LIF', 'Flatten', 'Affine',
                                    'Output'])
    lif = [n for n in graph.nodes.values() if isinstance(n, nir.LIF)][0]
    np.testing.assert_allclose(lif.tau, 1e-4 / (1 - alpha), rtol=1e-6)
    np.testing.assert_allclose(lif.v_threshold, theta * (1 - alpha),
                               rtol=1e-6)
    np.testing.assert_array_equal(lif.r, 1.0)
    flat = [n for n in graph.nodes.values() if isinstance(n, nir.Flatten)]
    assert flat[0].start_dim == 0  # of the unbatched [C, H, W]
    # BatchNorm folded: conv weight = w * gamma / sqrt(var + eps)
    bn = model.backbone.layers[0].norm
    conv = [n for n in graph.nodes.values() if isinstance(n, nir.Conv2d)][0]
    scale = (bn.weight / (bn.running_var + bn.eps).sqrt()).detach()
    want = model.backbone.layers[0].conv.weight.detach() * scale.reshape(
        -1, 1, 1, 1)
    np.testing.assert_allclose(conv.weight, want.numpy(), rtol=1e-6)


@pytest.mark.parametrize('kwargs, layer, feature', [
    (dict(pool=2), 'backbone.layers.0.pool', 'MaxPool2d'),
    (dict(neuron=dict(type='LIF', reset='soft')), 'backbone.layers.0.neuron',
     'soft reset'),
    (dict(neuron=dict(type='LIF', mode='analog')),
     'backbone.layers.0.neuron', 'analog'),
    (dict(neuron=dict(type='LIF', beta=0.1)), 'backbone.layers.0.neuron',
     'beta'),
    (dict(neuron=dict(type='LIF', param_shape='channel')),
     None, None),
])
def test_nir_refuses_inexpressible_features(kwargs, layer, feature,
                                            tmp_path):
    model = _model(**kwargs)
    if layer is None:  # per-channel thresholds that really differ
        neuron = model.backbone.layers[0].neuron
        neuron.theta.data = torch.linspace(0.3, 0.6, 4).reshape(4, 1, 1)
        layer, feature = 'backbone.layers.0.neuron', 'per-channel'
    with pytest.raises(UnsupportedFeature) as err:
        deploy(model, 'nir', _inputs(), str(tmp_path / 'out'))
    assert layer in str(err.value) and feature in str(err.value)
    assert not (tmp_path / 'out').exists()  # refused before writing


def test_nir_refuses_fp16(tmp_path):
    from bidl_train.errors import ConfigError
    with pytest.raises(ConfigError, match='fp32'):
        deploy(_model(), 'nir', _inputs(), str(tmp_path), precision='fp16')


def test_snntorch_import_reproduces_spikes(tmp_path):
    import_nir = pytest.importorskip('snntorch.import_nir')
    model = _model()
    x = _inputs(T=8, B=2)
    deploy(model, 'nir', x, str(tmp_path), verify_samples=False)
    logits, spikes = logits_and_spikes(model, x)
    net = import_nir.import_from_nir(nir.read(str(tmp_path / 'model.nir')))
    head = model.head.fc
    for b in range(x.shape[1]):  # Flatten after a conv: unbatched samples
        import snntorch.utils as sutils
        sutils.reset(net)
        outs = []
        with torch.no_grad():
            for t in range(x.shape[0]):
                out = net(x[t, b])
                out = out[0] if isinstance(out, tuple) else out
                outs.append(out.reshape(-1))
        got = torch.stack(outs).mean(0)
        torch.testing.assert_close(got, logits[b], atol=1e-5, rtol=0)
    assert head is not None


def test_norse_import_reproduces_logits(tmp_path):
    pytest.importorskip('norse.torch')
    model = _model()
    x = _inputs(T=8, B=2)
    deploy(model, 'nir', x, str(tmp_path), verify_samples=False)
    logits, _ = logits_and_spikes(model, x)
    graph = nir.read(str(tmp_path / 'model.nir'))
    assert_norse_reproduces_logits(graph, x, logits)


@pytest.mark.parametrize('pool, feature', [
    (dict(kernel_size=2, ceil_mode=True), 'ceil_mode'),
    (dict(kernel_size=2, divisor_override=1), 'divisor_override'),
    (dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
     'count_include_pad'),
])
def test_nir_refuses_average_pooling_that_is_no_scaled_sum_pool(
        pool, feature, tmp_path):
    """NIR's SumPool2d with 1/k^2 folded into the next layer is the average
    only for full windows that count the padding: the other AvgPool2d
    options are refused by layer name (not exported as something else or
    failing later on a shape)."""
    torch.manual_seed(0)
    size = 5 if pool.get('ceil_mode') else 4
    model = MODELS.build(dict(
        type='SpikingClassifier',
        backbone=dict(type='SpikingSequential', layers=[
            dict(type='Conv2dLif', in_channels=2, out_channels=4,
                 norm=False),
            dict(type='TimeFold', module=dict(type='AvgPool2d', **pool)),
            dict(type='Flatten'),
            dict(type='FcLif', in_features=4 * size * size,
                 out_features=6)]),
        head=dict(type='SpikingClsHead', in_features=6,
                  num_classes=3))).eval()
    side = 9 if pool.get('ceil_mode') else 8
    x = (torch.rand(3, 2, 2, side, side) > 0.5).float()
    with pytest.raises(UnsupportedFeature) as err:
        deploy(model, 'nir', x, str(tmp_path / 'out'))
    assert 'backbone.1.module' in str(err.value)
    assert feature in str(err.value)
    assert not (tmp_path / 'out').exists()
