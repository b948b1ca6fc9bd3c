"""Lowerings are looked up by module class in registries a user extends.

A layer defined here, outside bidl-train, registers how it lowers and
exports through ``deploy()``; the written files are then run by themselves
(``deploy_runner.run_step_files``) and compared with the model's own
``step`` and logits. A class with no lowering is refused by path and type,
saying how to register one.
"""
import copy

import pytest
import torch
from helpers.deploy_runner import (assert_matches_model, logits_and_spikes,
                           pytorch_reference, run_step_files)
from mmengine.registry import init_default_scope
from torch import nn

from bidl_train.deploy import (LAYER_LOWERINGS, NEURON_LOWERINGS,
                               NIR_LOWERINGS, OP_LOWERINGS, LoweringError,
                               UnsupportedFeature, deploy, lower_model)
from bidl_train.deploy.lower import Lowerings
from bidl_train.deploy.lowerings.neurons import own_step_node
from bidl_train.deploy.lowerings.resnet import ResidualBackboneGraph
from bidl_train.deploy.nodes import ModuleNode
from bidl_train.layers import FcLif, SpikingSequential, build_neuron
from bidl_train.models.backbones import ResNetLif
from bidl_train.neurons import LIF
from bidl_train.registry import MODELS

init_default_scope('bidl_train')


# -- a user's layers and their lowerings -------------------------------------
class Gain(nn.Module):
    """A user's stateless op: ``x * gain``."""

    def __init__(self, gain):
        super().__init__()
        self.gain = gain

    def forward(self, x):
        return x * self.gain


class GainFcLif(nn.Module):
    """A user's spiking layer: ``neuron(gain * fc(x))``."""

    def __init__(self, in_features, out_features, gain):
        super().__init__()
        self.fc = nn.Linear(in_features, out_features)
        self.gain = Gain(gain)
        self.neuron = build_neuron(dict(type='LIF'), (out_features, ),
                                   'GainFcLif')

    def forward(self, x_seq):
        return self.neuron(self.gain(self.fc(x_seq)))

    def step(self, x_t, state=None):
        return self.neuron.step(self.gain(self.fc(x_t)), state)


@OP_LOWERINGS.register(Gain)
def lower_gain(lowerer, module, source, fold_bn):
    lowerer.add(ModuleNode(copy.deepcopy(module)), source)


@LAYER_LOWERINGS.register(GainFcLif)
def lower_gain_fc_lif(lowerer, module, source, state_path):
    lowerer.stateless(module.fc, f'{source}.fc')
    lowerer.stateless(module.gain, f'{source}.gain')
    lowerer.neuron(module.neuron, f'{source}.neuron', state_path)


class Opaque(nn.Module):
    """A spiking layer nobody registered a lowering for."""

    def forward(self, x_seq):
        return x_seq

    def step(self, x_t, state=None):
        return x_t, None


class HalfInputLIF(LIF):
    """A LIF subclass with other equations: half the input current."""

    def forward(self, x_seq):
        return super().forward(0.5 * x_seq)

    def step(self, x_t, state=None):
        return super().step(0.5 * x_t, state)


class OtherHalfInputLIF(HalfInputLIF):
    """Registered below: runs its own step in the exported graph."""


NEURON_LOWERINGS.register(OtherHalfInputLIF)(own_step_node)


def _classifier(first, features=10, hidden=12):
    """``first`` (a layer on ``[T, B, features]`` to ``hidden``), an FcLif
    of 8, a SpikingClsHead of 3, in eval mode."""
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='SpikingClassifier',
        backbone=dict(type='SpikingSequential', layers=[
            dict(type='FcLif', in_features=features, out_features=hidden)]),
        head=dict(type='SpikingClsHead', in_features=8, num_classes=3)))
    model.backbone = SpikingSequential(first, FcLif(hidden, 8))
    return model.eval()


def _inputs(T=5, B=3, features=10):
    gen = torch.Generator().manual_seed(2)
    return (torch.rand(T, B, features, generator=gen) > 0.5).float()


# -- a user's layer exports -------------------------------------------------
@pytest.mark.parametrize('target', ['torchscript', 'onnx'])
def test_layer_registered_outside_bidl_train_exports(target, tmp_path):
    if target == 'onnx':
        pytest.importorskip('onnxruntime')
    model = _classifier(GainFcLif(10, 12, gain=3.0))
    x = _inputs()
    _, spikes = logits_and_spikes(model, x)
    assert int(spikes['backbone.0.neuron'].sum()) > 0  # real spikes
    report = deploy(model, target, x, str(tmp_path))
    assert report['status'] == 'verified'
    assert report['verification']['spike_agreement_overall'] == 1.0
    # the files by themselves against the model's own step and logits
    got = run_step_files(tmp_path, target, x)
    assert_matches_model(got, *pytorch_reference(model, x))
    # the gain is a node of its own: without it the spikes would differ
    sources = [layer.source for layer in lower_model(model).layers]
    assert sources[:3] == ['backbone.0.fc', 'backbone.0.gain',
                           'backbone.0.neuron']


def test_subclass_of_a_registered_layer_lowers_as_its_parent():
    class LoudGainFcLif(GainFcLif):
        pass

    plain = lower_model(_classifier(GainFcLif(10, 12, gain=3.0)))
    sub = lower_model(_classifier(LoudGainFcLif(10, 12, gain=3.0)))
    assert [type(layer.node) for layer in sub.layers] == \
        [type(layer.node) for layer in plain.layers]
    assert sub.state_names == plain.state_names


# -- refusals --------------------------------------------------------------
def test_unregistered_layer_refused_with_path_type_and_how_to(tmp_path):
    model = _classifier(Opaque(), hidden=10)
    with pytest.raises(LoweringError, match=(
            r'^layer backbone\.0: Opaque \([\w.]*Opaque\) has no lowering '
            r'in LAYER_LOWERINGS; registered: .*GainFcLif.*register one: '
            r'@LAYER_LOWERINGS\.register\(Opaque\) on a function '
            r'f\(lowerer, module, source, state_path\)')):
        deploy(model, 'torchscript', _inputs(), str(tmp_path / 'out'))
    assert not (tmp_path / 'out').exists()


def test_unregistered_op_refused_by_path():
    model = _classifier(GainFcLif(10, 12, gain=3.0))
    model.backbone[0].gain = nn.Softplus()
    with pytest.raises(LoweringError, match=(
            r'^layer backbone\.0\.gain: Softplus \(torch\.[\w.]*Softplus\) '
            r'has no lowering in OP_LOWERINGS.*@OP_LOWERINGS\.register')):
        lower_model(model)


def test_neuron_subclass_needs_its_own_lowering():
    """A neuron lowers by its exact kind: a LIF subclass may change the
    equations, so it is refused, not exported as a LIF."""
    model = _classifier(GainFcLif(10, 12, gain=3.0))
    model.backbone[0].neuron = HalfInputLIF(feature_shape=(12, ))
    with pytest.raises(LoweringError, match=(
            r'layer backbone\.0\.neuron: neuron kind HalfInputLIF .*its '
            r'parent LIF lowers as that class only.*'
            r'@NEURON_LOWERINGS\.register\(HalfInputLIF\)')):
        lower_model(model)


def test_registered_neuron_subclass_runs_its_own_step(tmp_path):
    model = _classifier(GainFcLif(10, 12, gain=3.0))
    model.backbone[0].neuron = OtherHalfInputLIF(feature_shape=(12, ))
    x = _inputs()
    half = logits_and_spikes(model, x)[1]['backbone.0.neuron']
    model.backbone[0].neuron = LIF(feature_shape=(12, ))
    full = logits_and_spikes(model, x)[1]['backbone.0.neuron']
    model.backbone[0].neuron = OtherHalfInputLIF(feature_shape=(12, ))
    assert not torch.equal(half, full)  # the subclass's maths differ
    report = deploy(model, 'torchscript', x, str(tmp_path))
    assert report['status'] == 'verified'
    got = run_step_files(tmp_path, 'torchscript', x)
    assert_matches_model(got, *pytorch_reference(model, x))


# -- NIR: exact by class, extended the same way -------------------------------
class WideResNet(ResNetLif):
    """A user's ResNetLif subclass: traced like its parent for ONNX and
    TorchScript; its NIR graph must be registered (exact entries)."""


def _wide_resnet():
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='SpikingClassifier',
        backbone=dict(type='FcLif', in_features=2, out_features=2),
        head=dict(type='SpikingClsHead', in_features=16, num_classes=3)))
    model.backbone = WideResNet(depth=10, in_channels=2, stem='cifar',
                                width=2)
    return model.eval()


def _frames():
    gen = torch.Generator().manual_seed(5)
    return (torch.rand(3, 2, 2, 8, 8, generator=gen) > 0.6).float()


def test_nir_graph_of_a_subclass_is_refused_until_registered(tmp_path):
    pytest.importorskip('nir')
    model = _wide_resnet()
    with pytest.raises(UnsupportedFeature, match=(
            r'layer backbone: WideResNet .*its parent ResNetLif lowers as '
            r'that class only.*@NIR_LOWERINGS\.register\(WideResNet\)')):
        deploy(model, 'nir', _frames(), str(tmp_path / 'refused'))
    assert not (tmp_path / 'refused').exists()
    NIR_LOWERINGS.register(WideResNet)(ResidualBackboneGraph)
    report = deploy(model, 'nir', _frames(), str(tmp_path / 'out'))
    assert report['status'] == 'verified'
    assert report['verification']['spike_agreement_overall'] == 1.0
    assert len(report['spike_names']) == 1 + 2 * 4  # stem, 4 blocks


# -- the registry itself -----------------------------------------------------
class _A:
    pass


class _B(_A):
    pass


class _C(_B):
    pass


def test_lookup_follows_the_mro_and_stops_at_an_exact_entry():
    reg = Lowerings('REG', '', 'f()')
    general, exact = object(), object()
    reg.register(_A)(general)
    assert reg.get(_C()) is general  # inherited along the MRO
    reg.register(_B, exact=True, fold_batchnorm=False)(exact)
    assert reg.get(_B()) is exact
    assert reg.options(_B()) == {'fold_batchnorm': False}
    # _C subclasses an exact entry: refused, not given _A's lowering
    assert reg.get(_C()) is None and reg.options(_C()) == {}
    assert 'its parent _B lowers as that class only' in reg.missing(_C())
    assert reg.names() == ['_A', '_B']
    with pytest.raises(TypeError, match='takes classes'):
        reg.register('_A')
