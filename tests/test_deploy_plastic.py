"""Deploying plastic layers that learn at inference, and the population
vote head, to TorchScript and ONNX.

The local weight and the rule's traces are explicit state of the step
graph; the written files run by themselves (``deploy_runner``) and are
compared, step by step and by state name, with the PyTorch model's own
``step`` (and its spikes, from forward hooks).
"""
import numpy as np
import pytest
import torch
from deploy_runner import (assert_matches_model, pytorch_reference,
                           run_step_files)
from mmengine.config import Config
from mmengine.registry import init_default_scope

from bidl_train.deploy import deploy, lower_model
from bidl_train.deploy.lower import LoweringError
from bidl_train.registry import MODELS

init_default_scope('bidl_train')


def _plastic_classifier(layer, plasticity, rule, learning=None):
    torch.manual_seed(0)
    if layer == 'PlasticFcLif':
        layers = [dict(type='Conv2dLif', in_channels=2, out_channels=4,
                       pool=2),
                  dict(type='Flatten'),
                  dict(type='PlasticFcLif', in_features=64, out_features=6,
                       plasticity=plasticity, rule=rule, learning=learning)]
        features = 6
    else:
        layers = [dict(type='PlasticConv2dLif', in_channels=2,
                       out_channels=3, pool=2, plasticity=plasticity,
                       rule=rule, learning=learning),
                  dict(type='Flatten')]
        features = 48
    model = MODELS.build(dict(
        type='SpikingClassifier',
        backbone=dict(type='SpikingSequential', layers=layers),
        head=dict(type='SpikingClsHead', in_features=features,
                  num_classes=3)))
    return model.eval()


def _events(shape, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=gen) > 0.5).float()


CASES = {
    'fast_fc_stdp': ('PlasticFcLif', 'fast',
                     dict(type='STDP', lr=0.5, pre_decay=0.5,
                          post_decay=0.5), None),
    'fast_conv_hebbian': ('PlasticConv2dLif', 'fast',
                          dict(type='Hebbian', lr=0.5, pre_decay=0.3,
                               weight_decay=0.1), None),
    'persistent_fc_oja': ('PlasticFcLif', 'persistent',
                          dict(type='Oja', lr=0.5, post_decay=0.5), True),
    'persistent_conv_bcm': ('PlasticConv2dLif', 'persistent',
                            dict(type='BCM', lr=0.5, theta0=0.2,
                                 w_min=-1.0, w_max=1.0), True),
}


@pytest.mark.parametrize('target, case', [
    ('torchscript', 'fast_fc_stdp'), ('onnx', 'fast_conv_hebbian'),
    ('onnx', 'persistent_fc_oja'), ('torchscript', 'persistent_conv_bcm'),
    ('onnx', 'persistent_conv_bcm')])
def test_learning_plastic_layer_round_trip(target, case, tmp_path):
    if target == 'onnx':
        pytest.importorskip('onnxruntime')
    layer, plasticity, rule, learning = CASES[case]
    model = _plastic_classifier(layer, plasticity, rule, learning)
    index = 2 if layer == 'PlasticFcLif' else 0
    plastic = model.backbone[index]
    if plasticity == 'persistent':  # a local weight learned before
        gen = torch.Generator().manual_seed(2)
        plastic.local_weight.copy_(torch.randn(
            plastic.local_weight.shape, generator=gen) * 0.2)
        if case == 'persistent_conv_bcm':
            plastic.rule_theta.fill_(0.3)
    buffers = {k: v.clone() for k, v in plastic.local_state_dict().items()}
    x = _events((5, 2, 2, 8, 8))
    logits, spikes, steps = pytorch_reference(model, x)
    assert int(spikes[f'backbone.{index}.neuron'].sum()) > 0
    report = deploy(model, target, x, str(tmp_path))
    assert report['status'] == 'verified'
    assert report['verification']['spike_agreement_overall'] == 1.0
    # deploying does not change the model's persistent local weight
    for key, value in plastic.local_state_dict().items():
        assert torch.equal(value, buffers[key])

    # the states are model.step's, by name: neuron, local weight, traces
    prefix = f'backbone.{index}'
    names = report['state_names']
    assert set(names) == set(steps[0]) - {'y'}
    assert {n for n in names if n.startswith(prefix)} >= {
        f'{prefix}.neuron.v', f'{prefix}.local', f'{prefix}.rule.pre_trace',
        f'{prefix}.rule.post_trace'}
    # initial values: the buffers (persistent, no batch axis) or zeros
    # per sample (fast); the traces start at zero
    init = np.load(tmp_path / 'initial_state.npz')
    out_features, in_features = plastic.local_shape
    if plasticity == 'persistent':
        np.testing.assert_array_equal(init[f'{prefix}.local'],
                                      buffers['local_weight'].numpy())
        assert f'{prefix}.local' in _shared(tmp_path)
    else:
        np.testing.assert_array_equal(init[f'{prefix}.local'], np.zeros(
            (1, out_features, in_features), np.float32))
    if case == 'persistent_conv_bcm':
        np.testing.assert_array_equal(init[f'{prefix}.rule.theta'],
                                      np.full(out_features, 0.3, np.float32))
    assert not init[f'{prefix}.rule.pre_trace'].any()

    got = run_step_files(tmp_path, target, x)
    assert_matches_model(got, logits, spikes, steps)
    # the local weight really learned inside the graph
    assert not np.allclose(got[-1][f'{prefix}.local'],
                           init[f'{prefix}.local'])


def _shared(out_dir):
    import json
    manifest = json.load(open(out_dir / 'manifest.json'))
    return manifest['shared_states']


def test_unrolled_onnx_of_a_persistent_plastic_conv_has_fixed_T(tmp_path):
    pytest.importorskip('onnxruntime')
    import json
    model = _plastic_classifier(*CASES['persistent_conv_bcm'])
    report = deploy(model, 'onnx', _events((4, 1, 2, 8, 8)), str(tmp_path),
                    verify_samples=False)
    assert any('T is FIXED at 4' in n and 'backbone.0' in n
               for n in report['notes'])
    assert json.load(open(tmp_path / 'manifest.json'))[
        'unrolled_time_steps'] == 4


def test_fast_layer_with_learning_off_folds_a_zero_local_weight(tmp_path):
    model = _plastic_classifier('PlasticFcLif', 'fast',
                                dict(type='Hebbian'), learning=False)
    lowered = lower_model(model)
    assert 'backbone.2.local' in lowered.folded_states
    assert any('L = 0' in note for note in lowered.folded)
    x = _events((3, 2, 2, 8, 8))
    report = deploy(model, 'torchscript', x, str(tmp_path))
    assert report['status'] == 'verified'


def test_reward_stdp_with_its_gate_off_is_exported(tmp_path):
    """No gate, no labels needed: the traces still run in the graph."""
    model = _plastic_classifier('PlasticFcLif', 'fast', dict(
        type='RewardSTDP', num_classes=3, group_size=2, gate=False))
    x = _events((3, 2, 2, 8, 8))
    report = deploy(model, 'torchscript', x, str(tmp_path))
    assert report['status'] == 'verified'
    assert 'backbone.2.rule.spike_count' in report['state_names']
    model.backbone[2].rule.gate = True
    with pytest.raises(LoweringError, match=r'layer backbone\.2: '
                       r'PlasticFcLif learns at inference with rule '
                       r'RewardSTDP'):
        lower_model(model)


# -- the population vote head (configs/_base_/models/plastic_conv_lif.py) ---
@pytest.mark.parametrize('target', ['torchscript', 'onnx'])
def test_population_head_model_round_trip(target, tmp_path):
    if target == 'onnx':
        pytest.importorskip('onnxruntime')
    torch.manual_seed(0)
    config = Config.fromfile('configs/_base_/models/plastic_conv_lif.py')
    model = MODELS.build(config.model).eval()
    model.backbone[3].linear.weight.data *= 3  # the population fires
    x = _events((4, 2, 2, 16, 16))
    logits, spikes, steps = pytorch_reference(model, x)
    assert int(spikes['backbone.3.neuron'].sum()) > 0
    report = deploy(model, target, x, str(tmp_path))
    assert report['status'] == 'verified'
    # the head's own state: the running sum of group rates and the count
    assert report['state_names'][-2:] == ['head.sum', 'head.count']
    assert report['resources']['synapses'] == sum(
        layer.get('synapses', 0) for layer in report['resources']['layers'])
    got = run_step_files(tmp_path, target, x)
    # learning off at inference: the persistent local weight is constant
    assert_matches_model(got, logits, spikes, steps,
                         folded=['backbone.3.local'])
    # the vote by hand: scale * mean over time and group of the spikes
    rates = spikes['backbone.3.neuron'].reshape(4, 2, 4, 10).mean((0, 3))
    np.testing.assert_allclose(got[-1]['y'], 10.0 * rates.numpy(),
                               atol=1e-5)
