"""Deploying plastic layers that learn at inference, and the population
vote head, to TorchScript and ONNX.

The local weight and the rule's traces are explicit state of the step
graph; the written files run by themselves (``deploy_runner``) and are
compared, step by step and by state name, with the PyTorch model's own
``step`` (and its spikes, from forward hooks).
"""
import json

import numpy as np
import pytest
import torch
from helpers.deploy_runner import (assert_matches_model, plastic_classifier,
                           pytorch_reference, run_step_files)
from mmengine.config import Config
from mmengine.registry import init_default_scope

from bidl_train.deploy import deploy, lower_model
from bidl_train.registry import DATASETS, MODELS

init_default_scope('bidl_train')


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
    model = plastic_classifier(layer, plasticity, rule, learning)
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
    return _manifest(out_dir)['shared_states']


@pytest.mark.parametrize('rule', ['BCM', 'RewardSTDP'])
def test_unrolled_onnx_of_a_persistent_plastic_conv_has_fixed_T(rule,
                                                                tmp_path):
    ort = pytest.importorskip('onnxruntime')
    if rule == 'BCM':
        model = plastic_classifier(*CASES['persistent_conv_bcm'])
    else:
        model = plastic_classifier('PlasticConv2dLif', 'persistent', dict(
            _REWARD, group_size=1), learning=True)
    report = deploy(model, 'onnx', _events((4, 1, 2, 8, 8)), str(tmp_path),
                    verify_samples=False)
    assert any('T is FIXED at 4' in n and 'backbone.0' in n
               for n in report['notes'])
    manifest = _manifest(tmp_path)
    assert manifest['unrolled_time_steps'] == 4
    # report.json's exporter entry says why neither exporter could loop
    (note, ) = report['exporter']['notes']
    assert note.startswith('unrolled.onnx: T fixed at 4: a convolution')
    assert 'ContextVar' in note and 'constant kernel shape' in note
    assert 'T is FIXED at 4' in manifest['unrolled']['note']
    if rule == 'RewardSTDP':  # the traced T-step graph takes labels too
        assert manifest['unrolled']['inputs'] == ['x_seq', 'teacher']
        x, labels = _events((4, 2, 2, 8, 8), seed=4), [0, 2]
        session = ort.InferenceSession(str(tmp_path / 'unrolled.onnx'))
        got = session.run(None, dict(x_seq=x.numpy(), teacher=np.array(
            labels, np.int64)))[0]
        want, _, _ = pytorch_reference(model, x, labels)
        np.testing.assert_allclose(got, want.numpy(), atol=1e-5)


def test_fast_layer_with_learning_off_folds_a_zero_local_weight(tmp_path):
    model = plastic_classifier('PlasticFcLif', 'fast',
                                dict(type='Hebbian'), learning=False)
    lowered = lower_model(model)
    assert 'backbone.2.local' in lowered.folded_states
    assert any('L = 0' in note for note in lowered.folded)
    x = _events((3, 2, 2, 8, 8))
    report = deploy(model, 'torchscript', x, str(tmp_path))
    assert report['status'] == 'verified'


def test_reward_stdp_with_its_gate_off_is_exported(tmp_path):
    """No gate, no labels needed: the traces still run in the graph, which
    keeps the signature of a net without teacher (no unused input)."""
    model = plastic_classifier('PlasticFcLif', 'fast', dict(
        type='RewardSTDP', num_classes=3, group_size=2, gate=False))
    x = _events((3, 2, 2, 8, 8))
    report = deploy(model, 'torchscript', x, str(tmp_path))
    assert report['status'] == 'verified'
    assert 'backbone.2.rule.spike_count' in report['state_names']
    assert report['teacher'] is None
    assert [i['name'] for i in report['inputs']] == ['x'] + report[
        'state_names']
    manifest = _manifest(tmp_path)
    assert manifest['teacher'] is None and 'inputs' not in manifest[
        'unrolled']
    # self, x and the states: nothing else
    step = torch.jit.load(str(tmp_path / 'step.pt'))
    assert len(step.forward.schema.arguments) == 2 + len(
        report['state_names'])
    model.backbone[2].rule.gate = True
    assert lower_model(model).teacher_layers == ['backbone.2']


# -- reward-modulated STDP learning at inference: the teacher input ---------
_REWARD = dict(type='RewardSTDP', num_classes=3, group_size=2, lr=0.5,
               pre_eligibility=1.0, w_min=-1.0, w_max=1.0)


def _manifest(out_dir):
    return json.load(open(out_dir / 'manifest.json'))


def _graph_inputs(out_dir, target, graph):
    """The input names of a written graph, read from the graph itself."""
    if target == 'onnx':
        import onnx
        model = onnx.load(str(out_dir / f'{graph}.onnx'))
        return [i.name for i in model.graph.input]
    module = torch.jit.load(str(out_dir / f'{graph}.pt'))
    return [a.name for a in module.forward.schema.arguments[1:]]


@pytest.mark.parametrize('target', ['torchscript', 'onnx'])
def test_reward_stdp_learning_at_inference_round_trip(target, tmp_path):
    """A persistent PlasticFcLif with RewardSTDP learning at inference: the
    graphs take the labels as ``teacher``; with true labels the shared
    local weight learns, with -1 it stays as it is, in the deployed graph
    and in the model's own step under ``teaching`` alike."""
    if target == 'onnx':
        pytest.importorskip('onnxruntime')
    model = plastic_classifier('PlasticFcLif', 'persistent', _REWARD,
                                learning=True)
    plastic = model.backbone[2]
    gen = torch.Generator().manual_seed(2)
    plastic.local_weight.copy_(torch.randn(plastic.local_weight.shape,
                                           generator=gen) * 0.2)
    before = plastic.local_weight.clone()
    x = _events((4, 3, 2, 8, 8))
    labels = [2, 0, 1]
    report = deploy(model, target, x, str(tmp_path), labels=labels)
    assert report['status'] == 'verified'
    assert torch.equal(plastic.local_weight, before)  # model untouched
    ver = report['verification']
    assert ver['spike_agreement_overall'] == 1.0
    assert ver['without_labels']['spike_agreement_overall'] == 1.0
    learned = ver['local_weight_change']
    assert learned['deployed']['backbone.2.local'] > 1e-3
    assert learned['deployed']['backbone.2.local'] == pytest.approx(
        learned['pytorch']['backbone.2.local'], abs=1e-6)
    assert ver['without_labels']['local_weight_change'] == dict(
        deployed={'backbone.2.local': 0.0}, pytorch={'backbone.2.local': 0.0})

    # the teacher input: right after x / x_seq, in graph, manifest, report
    states = report['state_names']
    if target == 'onnx':
        assert _graph_inputs(tmp_path, target, 'step') == [
            'x', 'teacher'] + states
        assert _graph_inputs(tmp_path, target, 'unrolled') == ['x_seq',
                                                               'teacher']
    else:  # a traced module's argument names are its tracer's, count them
        assert len(_graph_inputs(tmp_path, target, 'step')) == 2 + len(
            states)
        assert len(_graph_inputs(tmp_path, target, 'unrolled')) == 2
    manifest = _manifest(tmp_path)
    specs = manifest['step']['inputs']
    assert [s['name'] for s in specs[:2]] == ['x', 'teacher']
    assert specs[1]['dtype'] == 'int64' and specs[1]['batch_axis'] == 0
    assert manifest['unrolled']['inputs'] == ['x_seq', 'teacher']
    teacher = manifest['teacher']
    assert teacher['name'] == 'teacher' and teacher['dtype'] == 'int64'
    assert teacher['shape'] == ['batch']
    assert teacher['layers'] == {'backbone.2': 'RewardSTDP'}
    assert '-1' in teacher['meaning']
    assert report['teacher'] == teacher
    assert [i['name'] for i in report['inputs'][:2]] == ['x', 'teacher']

    # the files by themselves against the model's own step, both ways
    init = np.load(tmp_path / 'initial_state.npz')['backbone.2.local']
    np.testing.assert_array_equal(init, before.numpy())
    finals = {}
    for name, teach in (('labels', labels), ('none', [-1, -1, -1])):
        logits, spikes, steps = pytorch_reference(model, x, teach)
        got = run_step_files(tmp_path, target, x, teach)
        assert_matches_model(got, logits, spikes, steps)
        finals[name] = (got[-1]['backbone.2.local'],
                        steps[-1]['backbone.2.local'].numpy())
    for deployed, pytorch in finals.values():
        np.testing.assert_allclose(deployed, pytorch, atol=1e-6, rtol=0)
    assert np.abs(finals['labels'][0] - init).max() > 1e-3
    np.testing.assert_array_equal(finals['none'][0], init)
    np.testing.assert_array_equal(finals['none'][1], init)


def test_unlabelled_samples_leave_their_fast_local_weight_alone(tmp_path):
    """A fast layer has one local weight per sample: in a batch of labelled
    and unlabelled samples only the labelled ones learn (ONNX graph and
    model alike), and the unrolled graph takes the same labels."""
    ort = pytest.importorskip('onnxruntime')
    model = plastic_classifier('PlasticFcLif', 'fast', _REWARD)
    x = _events((4, 3, 2, 8, 8), seed=3)
    labels = [1, -1, 0]
    report = deploy(model, 'onnx', x, str(tmp_path), labels=labels)
    assert report['status'] == 'verified'
    logits, spikes, steps = pytorch_reference(model, x, labels)
    got = run_step_files(tmp_path, 'onnx', x, labels)
    assert_matches_model(got, logits, spikes, steps)
    for local in (got[-1]['backbone.2.local'],
                  steps[-1]['backbone.2.local'].numpy()):
        assert not local[1].any()  # starts at zero, stays zero
        assert np.abs(local[0]).max() > 1e-3 and np.abs(local[2]).max() > \
            1e-3
    session = ort.InferenceSession(str(tmp_path / 'unrolled.onnx'))
    deployed = {}
    for teach in (labels, [-1, -1, -1]):
        want, _, _ = pytorch_reference(model, x, teach)
        deployed[teach[0]] = session.run(None, dict(
            x_seq=x.numpy(), teacher=np.array(teach, np.int64)))[0]
        np.testing.assert_allclose(deployed[teach[0]], want.numpy(),
                                   atol=1e-5)
    # what the labels taught shows in the logits of the labelled samples
    change = np.abs(deployed[1] - deployed[-1]).max(1)
    assert change[1] == 0 and change[0] > 1e-3 and change[2] > 1e-3


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


# -- bidl-deploy on the co-learning demo's kind of model --------------------
_DEMO_CONFIG = '''
default_scope = 'bidl_train'
_neuron = dict(type='LIF', alpha=0.5, theta=0.5)
model = dict(
    type='SpikingClassifier',
    backbone=dict(type='SpikingSequential', layers=[
        dict(type='Conv2dLif', in_channels=2, out_channels=4, pool=2,
             neuron=_neuron),
        dict(type='Flatten'),
        dict(type='PlasticFcLif', in_features=64, out_features=8,
             plasticity='persistent', neuron=_neuron,
             rule=dict(type='RewardSTDP', num_classes=4, group_size=2,
                       lr=0.2, pre_eligibility=1.0, w_min=-1.0,
                       w_max=1.0)),
    ]),
    head=dict(type='PopulationClsHead', num_classes=4, group_size=2,
              scale=10.0))
val_dataloader = dict(
    batch_size=4, num_workers=0,
    dataset=dict(type='ShiftedDataset', swap_polarity=True,
                 dataset=dict(type='SyntheticMotion', split='test',
                              num_samples=4, T=4, size=8, blob=2)))
'''


def test_cli_deploys_a_model_learning_from_rewards(tmp_path, capsys):
    """``bidl-deploy CONFIG CKPT --target onnx|torchscript --verify N`` with
    learning switched on at inference by ``--cfg-options
    model.backbone.layers.2.learning=True`` (the co-learning hook's switch
    of a persistent layer): the graphs get a teacher input and are
    verified with the validation labels as rewards; without the switch the
    learned local weight is folded and there is no teacher input."""
    pytest.importorskip('onnxruntime')
    from bidl_train.cli.common import load_config
    from bidl_train.cli.deploy import main
    cfg = tmp_path / 'colearn.py'
    cfg.write_text(_DEMO_CONFIG)
    torch.manual_seed(0)
    model = MODELS.build(load_config(str(cfg)).model)
    with torch.no_grad():  # a local weight learned before (co-learning)
        model.backbone[2].local_weight.uniform_(-0.2, 0.2)
    ckpt = tmp_path / 'ck.pth'
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, ckpt)
    dataset = DATASETS.build(load_config(str(cfg)).val_dataloader.dataset)
    labels = [int(dataset[i]['label']) for i in range(3)]
    switch = ['--cfg-options', 'model.backbone.layers.2.learning=True']
    for target in ('onnx', 'torchscript'):
        out = tmp_path / target
        assert main([str(cfg), str(ckpt), '--target', target, '--out',
                     str(out), '--verify', '3'] + switch) == 0
        report = json.load(open(out / 'report.json'))
        assert report['status'] == 'verified'
        assert report['teacher']['layers'] == {'backbone.2': 'RewardSTDP'}
        ver = report['verification']
        assert ver['samples'] == 3 and ver['steps'] == 4
        # the teacher of the rewarded run: the validation labels
        assert ver['teacher'] == 'the labels of the samples'
        assert ver['top1']['labels'] == labels
        assert ver['local_weight_change']['deployed'][
            'backbone.2.local'] > 1e-3
        assert ver['without_labels']['local_weight_change']['deployed'][
            'backbone.2.local'] == 0.0
        summary = capsys.readouterr().out
        assert 'teacher input: teacher (int64' in summary
        assert 'without labels (teacher -1)' in summary
    # learning off (the config as trained): folded, no teacher input
    lowered = lower_model(MODELS.build(load_config(str(cfg)).model).eval())
    assert lowered.teacher_layers == []
    assert 'backbone.2.local' in lowered.folded_states


def test_spikes_of_a_learning_layer_with_an_izhikevich_neuron_are_verified(
        tmp_path):
    """Izhikevich has no ``mode`` (it always spikes): the verification
    compares the plastic layer's exported spikes with the model's, as for
    every other spiking neuron, instead of skipping them as analog."""
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='SpikingClassifier',
        backbone=dict(type='SpikingSequential', layers=[
            dict(type='Flatten'),
            dict(type='PlasticFcLif', in_features=128, out_features=6,
                 plasticity='fast', rule=dict(type='Hebbian', lr=0.5),
                 neuron=dict(type='Izhikevich'))]),
        head=dict(type='SpikingClsHead', in_features=6,
                  num_classes=3))).eval()
    model.backbone[1].linear.weight.data *= 200  # the neurons fire
    x = _events((5, 3, 2, 8, 8))
    _, spikes, _ = pytorch_reference(model, x)
    fired = int(spikes['backbone.1.neuron'].sum())
    assert fired > 0
    report = deploy(model, 'torchscript', x, str(tmp_path))
    assert report['status'] == 'verified'
    agreement = report['verification']['spike_agreement']
    assert set(agreement) == {'spikes.backbone.1.neuron'}
    assert agreement['spikes.backbone.1.neuron']['spikes'] == fired
