"""NIR graphs with branches (ResNetLif, SEW-ResNet ADD) and CubaLIF neurons.

Each exported file is read back with ``nir.read`` and run in two
independent importers, snnTorch 1.0 (``import_from_nir``) and Norse 1.1
(its own neuron modules); every spike of every layer at every step must
equal PyTorch's, and so must the logits. Norse's ``from_nir`` goes through
the deprecated ``nirtorch.load``, whose executor runs nodes in depth-first
order: a node whose sources lie on two different branches (a projection
shortcut) runs before one of them and reads its previous-step output
(docs/nir.md). Residual graphs therefore run Norse's modules under
nirtorch's current interpreter (``nir_to_torch``), which orders the nodes
topologically; chains and identity-shortcut graphs also pass through
``from_nir`` itself.
"""
import json

import pytest
import torch
from helpers.deploy_runner import assert_importer_reproduces
from mmengine.registry import init_default_scope

from bidl_train.deploy import deploy
from bidl_train.deploy.base import UnsupportedFeature
from bidl_train.registry import MODELS

nir = pytest.importorskip('nir')
init_default_scope('bidl_train')

WIDTH, SIZE, T, B = 4, 16, 6, 2
CUBA = dict(type='CubaLIF', alpha=0.6, alpha_syn=0.4, theta=0.5)
#: BIDL's ResNetLif: average-pool projection shortcut, biased convs
BIDL_RESNET = dict(shortcut='avgpool_conv', conv_bias=True)


def _frames(seed=5):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, 2, SIZE, SIZE, generator=gen) > 0.6).float()


def _calibrated(backbone, x, in_features):
    """A classifier whose every layer spikes: BatchNorm running statistics
    set to the batch's (random weights with unit statistics leave the deep
    layers silent, which would make "spikes match" vacuous)."""
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='SpikingClassifier', backbone=backbone,
        head=dict(type='SpikingClsHead', in_features=in_features,
                  num_classes=3)))
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # cumulative: exactly the batch's stats
            module.reset_running_stats()
    model.train()
    with torch.no_grad():
        model(x, mode='tensor')
    return model.eval()


def _residual(kind, x=None, **kwargs):
    backbone = dict(dict(type=kind, depth=10, in_channels=2, stem='cifar',
                         width=WIDTH), **kwargs)
    return _calibrated(backbone, _frames() if x is None else x, 8 * WIDTH)


def _cuba_net(x=None, neuron=CUBA):
    backbone = dict(type='ConvLifNet', in_channels=2, input_size=SIZE,
                    channels=[4, 8], pools=[None, None], strides=[1, 2],
                    fc=[16], neuron=neuron)
    return _calibrated(backbone, _frames() if x is None else x, 16)


def _export(model, x, out):
    """Deploy (verified by our own runtime), then the NIR neuron node of
    every PyTorch neuron, from the manifest and the report."""
    report = deploy(model, 'nir', x, str(out))
    assert report['status'] == 'verified'
    assert report['verification']['spike_agreement_overall'] == 1.0
    with open(out / 'manifest.json') as f:
        keys = [n['node'] for n in json.load(f)['neurons']]
    layers = [name[len('spikes.'):] for name in report['spike_names']]
    return nir.read(str(out / 'model.nir')), dict(zip(layers, keys))


MODELS_UNDER_TEST = dict(
    resnet=lambda x: _residual('ResNetLif', x),
    sew_add=lambda x: _residual('SEWResNet', x, cnf='ADD'),
    resnet_cuba=lambda x: _residual('ResNetLif', x, neuron=CUBA),
    resnet_bidl=lambda x: _residual('ResNetLif', x, **BIDL_RESNET),
    cuba=lambda x: _cuba_net(x))


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """``exported(name) -> (model, x, graph, neurons)``: each model of
    :data:`MODELS_UNDER_TEST` built and exported once, when first asked."""
    cache = {}

    def get(name):
        if name not in cache:
            x = _frames()
            model = MODELS_UNDER_TEST[name](x)
            graph, neurons = _export(model, x, tmp_path_factory.mktemp(name))
            cache[name] = (model, x, graph, neurons)
        return cache[name]
    return get


def _sources(graph, key):
    return sorted(src for src, dst in graph.edges if dst == key)


def test_resnet_graph_has_the_residual_edges(exported):
    _, _, graph, neurons = exported('resnet')
    # hand count, depth 10: stem conv+LIF; stage 0 one identity block
    # (conv, LIF, conv, LIF); stages 1-3 one projection block each (conv,
    # LIF, conv, 1x1 shortcut conv, LIF); global SumPool2d; the head's
    # Flatten and Affine; Input and Output
    assert len(graph.nodes) == 2 + 4 + 3 * 5 + 1 + 2 + 2 == 26
    # 2 stem + 5 identity block + 3 x 6 projection block + 4 tail
    assert len(graph.edges) == 2 + 5 + 3 * 6 + 4 == 29
    # the identity shortcut: the stem's spikes join stage 0's second LIF
    assert _sources(graph, 'n0_stages_0_0_sn2') == [
        'n0_stages_0_0_conv2', 'n0_stem_sn']
    # a projection shortcut: a conv of the block input joins the LIF
    assert _sources(graph, 'n0_stages_1_0_sn2') == [
        'n0_stages_1_0_conv2', 'n0_stages_1_0_shortcut_0']
    assert _sources(graph, 'n0_stages_1_0_shortcut_0') == [
        'n0_stages_0_0_sn2']
    kinds = [type(graph.nodes[k]).__name__ for k in neurons.values()]
    assert kinds == ['LIF'] * 9
    assert isinstance(graph.nodes['n0_pool'], nir.SumPool2d)


def test_resnet_batchnorm_folded_and_pool_scale_in_the_head(exported):
    model, _, graph, _ = exported('resnet')
    block = model.backbone.stages[1][0]
    conv, bn = block.shortcut
    scale = (bn.weight / (bn.running_var + bn.eps).sqrt()).detach()
    node = graph.nodes['n0_stages_1_0_shortcut_0']
    torch.testing.assert_close(
        torch.from_numpy(node.weight),
        conv.weight.detach() * scale.reshape(-1, 1, 1, 1))
    torch.testing.assert_close(
        torch.from_numpy(node.bias),
        (bn.bias - bn.running_mean * scale).detach())
    # global average over the last 2x2 map: a sum, 1/4 folded into the fc
    assert graph.nodes['n0_pool'].kernel_size.tolist() == [2, 2]
    torch.testing.assert_close(torch.from_numpy(graph.nodes['n2'].weight),
                               model.head.fc.weight.detach() / 4)


def test_bidl_shortcut_is_a_sum_pool_into_the_scaled_conv(exported):
    model, _, graph, _ = exported('resnet_bidl')
    # as 'resnet', plus one SumPool2d node (and edge) per projection
    assert len(graph.nodes) == 26 + 3 and len(graph.edges) == 29 + 3
    pool = graph.nodes['n0_stages_1_0_shortcut_0']
    assert isinstance(pool, nir.SumPool2d)
    assert pool.kernel_size.tolist() == pool.stride.tolist() == [2, 2]
    assert pool.padding.tolist() == [0, 0]
    assert _sources(graph, 'n0_stages_1_0_shortcut_0') == [
        'n0_stages_0_0_sn2']
    assert _sources(graph, 'n0_stages_1_0_shortcut_1') == [
        'n0_stages_1_0_shortcut_0']
    assert _sources(graph, 'n0_stages_1_0_sn2') == [
        'n0_stages_1_0_conv2', 'n0_stages_1_0_shortcut_1']
    # BatchNorm folded with the conv's bias; the average's 1/4 in the
    # weight only
    def folded(conv, bn):
        scale = (bn.weight / (bn.running_var + bn.eps).sqrt()).detach()
        return (conv.weight.detach() * scale.reshape(-1, 1, 1, 1),
                ((conv.bias - bn.running_mean) * scale + bn.bias).detach())

    _, conv, bn = model.backbone.stages[1][0].shortcut
    assert bool((conv.bias != 0).all())  # the bias term is not vacuous
    weight, bias = folded(conv, bn)
    node = graph.nodes['n0_stages_1_0_shortcut_1']
    assert tuple(node.stride) == (1, 1)
    torch.testing.assert_close(torch.from_numpy(node.weight), weight / 4)
    torch.testing.assert_close(torch.from_numpy(node.bias), bias)
    stem = model.backbone.stem
    torch.testing.assert_close(
        torch.from_numpy(graph.nodes['n0_stem_conv'].bias),
        folded(stem.conv, stem.bn)[1])


def test_bidl_shortcut_on_an_odd_map_refused(tmp_path):
    """18x18 frames: stage 2's shortcut pools a 9x9 map, whose last
    (partial) window ``ceil_mode`` averages over fewer pixels."""
    gen = torch.Generator().manual_seed(5)
    x = (torch.rand(T, B, 2, 18, 18, generator=gen) > 0.6).float()
    model = _residual('ResNetLif', x, **BIDL_RESNET)
    with pytest.raises(UnsupportedFeature) as err:
        deploy(model, 'nir', x, str(tmp_path / 'out'))
    assert err.value.layer == 'backbone.stages.2.0.shortcut.0'
    assert 'a 9x9 map in 2x2 windows' in str(err.value)
    assert not (tmp_path / 'out' / 'model.nir').exists()


def test_sew_add_graph_sums_spike_edges(exported):
    _, _, graph, _ = exported('sew_add')
    # stem 2; identity block 4; three downsampling blocks (conv, LIF, conv,
    # LIF, 1x1 conv, LIF) 18; SumPool2d, Flatten, Affine; Input, Output
    assert len(graph.nodes) == 2 + 4 + 3 * 6 + 3 + 2 == 29
    # each downsampling block gets the previous block's two spike sources
    # into conv1 and into the downsample conv (4 edges) plus 4 inside; the
    # pooling sums the last two spike sources
    assert len(graph.edges) == 2 + 4 + 3 * (4 + 4) + 2 + 3 == 35
    # block 0 (identity) outputs A + x: both spike nodes feed block 1
    for key in ('n0_stages_1_0_conv1', 'n0_stages_1_0_downsample_0'):
        assert _sources(graph, key) == ['n0_stages_0_0_sn2', 'n0_stem_sn']
    assert _sources(graph, 'n0_pool') == ['n0_stages_3_0_sn2',
                                          'n0_stages_3_0_sn_down']


@pytest.mark.parametrize('importer', ['snntorch', 'norse'])
@pytest.mark.parametrize('name', ['resnet', 'sew_add', 'resnet_cuba',
                                  'resnet_bidl'])
def test_residual_nir_import_reproduces_spikes(exported, name, importer):
    model, x, graph, neurons = exported(name)
    assert_importer_reproduces(importer, graph, neurons, model, x)


def test_identity_shortcuts_run_in_norse_from_nir(tmp_path):
    """With only identity shortcuts every node's sources lie on one
    depth-first path, so even ``from_nir``'s executor gets them in order."""
    x = _frames()
    model = _residual('SEWResNet', x, cnf='ADD')
    model.backbone.stages = model.backbone.stages[:1]  # identity block only
    model.head.fc = torch.nn.Linear(WIDTH, 3)
    graph, neurons = _export(model, x, tmp_path)
    assert_importer_reproduces('norse_from_nir', graph, neurons, model, x)


def test_cuba_lif_in_resnet_keeps_the_graph(exported):
    graph, neurons = exported('resnet')[2:]
    cuba = exported('resnet_cuba')[2]
    assert sorted(cuba.edges) == sorted(graph.edges)
    assert {type(cuba.nodes[k]).__name__ for k in neurons.values()} == {
        'CubaLIF'}


def test_cuba_lif_maps_to_nir_cuba_lif(exported):
    model, _, graph, neurons = exported('cuba')
    assert len(neurons) == 3  # two conv layers and one FC layer
    node = graph.nodes[neurons['backbone.layers.0.neuron']]
    assert isinstance(node, nir.CubaLIF)
    dt, alpha, alpha_syn = 1e-4, CUBA['alpha'], CUBA['alpha_syn']
    for field, want in (('tau_syn', dt / (1 - alpha_syn)),
                        ('tau_mem', dt / (1 - alpha)),
                        ('w_in', 1 / (1 - alpha_syn)), ('r', 1 / (1 - alpha)),
                        ('v_threshold', CUBA['theta']), ('v_leak', 0.0),
                        ('v_reset', 0.0)):
        values = torch.from_numpy(getattr(node, field)).double()
        torch.testing.assert_close(values, torch.full_like(values, want),
                                   rtol=1e-6, atol=0, msg=field)


@pytest.mark.parametrize('importer', ['snntorch', 'norse_from_nir'])
def test_cuba_lif_nir_import_reproduces_spikes(exported, importer):
    model, x, graph, neurons = exported('cuba')
    assert_importer_reproduces(importer, graph, neurons, model, x)


def _soft_block_neuron(model):
    model.backbone.stages[0][0].sn2.act.reset = 'soft'
    return model


@pytest.mark.parametrize('build, layer, feature', [
    (lambda: _residual('SEWResNet', cnf='AND'), 'backbone.stages.0.0',
     'connect function AND'),
    (lambda: _residual('SEWResNet', cnf='IAND'), 'backbone.stages.0.0',
     'connect function IAND'),
    (lambda: _soft_block_neuron(_residual('ResNetLif')),
     'backbone.stages.0.0.sn2', 'soft reset'),
    (lambda: _residual('ResNetLif', stem='imagenet'), 'backbone.stem.pool',
     'MaxPool2d'),
    (lambda: _calibrated(dict(type='ResNetLif', depth=18, in_channels=2,
                              stem='cifar', width=WIDTH, lite=True),
                         _frames(), 8 * WIDTH),
     'backbone.stages.0.1.sn1', 'ReLU'),
    (lambda: _cuba_net(neuron=dict(CUBA, reset='soft')),
     'backbone.layers.0.neuron', 'soft reset'),
    (lambda: _cuba_net(neuron=dict(type='ALIF')),
     'backbone.layers.0.neuron', 'ALIF'),
])
def test_nir_graph_refusals_name_the_layer(build, layer, feature, tmp_path):
    model = build()
    with pytest.raises(UnsupportedFeature) as err:
        deploy(model, 'nir', _frames(), str(tmp_path / 'out'))
    assert err.value.layer == layer and feature in str(err.value)
    assert not (tmp_path / 'out').exists()  # refused before writing
