"""``bidl-test`` judges the health of the model it evaluates: each spiking
layer's firing rate over the test set, a console warning per silent or
saturated layer with the usual fix, and both in its JSON report."""
import json

import pytest
import torch
from mmengine.config import Config

from bidl_train.cli.test import health_summary
from bidl_train.engine.hooks.training_health import ADVICE
from bidl_train.registry import MODELS

from helpers.commands import run_here, tool

#: a threshold no input reaches: the layer never fires
SILENT = dict(type='LIF', alpha=0.5, theta=1e6)

CONFIG = '''
default_scope = 'bidl_train'
_neuron = {neuron!r}
model = dict(
    type='SpikingClassifier',
    backbone=dict(type='SpikingSequential', layers=[
        dict(type='Conv2dLif', in_channels=2, out_channels=4, pool=2,
             neuron=_neuron),
        dict(type='Flatten'),
        dict(type='FcLif', in_features=64, out_features=8, neuron=_neuron),
    ]),
    head=dict(type='SpikingClsHead', in_features=8, num_classes=4))
test_dataloader = dict(
    batch_size=4, num_workers=0,
    dataset=dict(type='SyntheticMotion', split='test', num_samples=6, T=4,
                 size=8, blob=2),
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'))
test_evaluator = dict(type='Accuracy')
test_cfg = dict()
'''


def two_layer_checkpoint(tmp_path, neuron):
    """A config of a Conv2dLif -> FcLif network (two spiking layers) and a
    checkpoint of it as built (the thresholds are in the state dict)."""
    config = tmp_path / 'two_layers.py'
    config.write_text(CONFIG.format(neuron=neuron))
    torch.manual_seed(0)
    net = MODELS.build(Config.fromfile(str(config)).model)
    checkpoint = tmp_path / 'two_layers.pth'
    torch.save(dict(meta={}, state_dict=net.state_dict()), checkpoint)
    return str(config), str(checkpoint)


def bidl_test(tmp_path, config, checkpoint, *options):
    proc = run_here([tool('test'), config, checkpoint, '--work-dir',
                     str(tmp_path / 'work'), *options], tmp_path)
    with open(tmp_path / 'work' / 'test_metrics.json') as f:
        return proc.stdout + proc.stderr, json.load(f)


def test_two_silent_layers_are_warned_and_reported(tmp_path):
    config, checkpoint = two_layer_checkpoint(tmp_path, SILENT)
    console, report = bidl_test(tmp_path, config, checkpoint)
    layers = ['backbone.0.neuron', 'backbone.2.neuron']
    warnings = [line for line in console.splitlines()
                if 'WARNING - TrainingHealthHook' in line]
    # one line per layer, naming it, with what usually fixes it
    assert len(warnings) == 2, console[-3000:]
    for line, layer in zip(warnings, layers):
        assert f"spiking layer '{layer}' emitted no spike over the whole " \
            'test set (6 samples, evaluation mode; firing rate 0' in line
        assert ADVICE['silent'] in line
    assert ('health: of 2 spiking layers over the 6 test samples, 2 silent '
            '(backbone.0.neuron, backbone.2.neuron)') in console
    # the JSON report: per-layer rates, conditions and the warnings
    health = report['health']
    assert health['samples'] == 6
    assert health['layers'] == {
        layer: dict(firing_rate=0.0, spiking=True, condition='silent')
        for layer in layers}
    assert [(w['condition'], w['layer']) for w in health['warnings']] == [
        ('silent', layer) for layer in layers]
    assert [w['message'] for w in health['warnings']] == [
        line.split('WARNING - ', 1)[1] for line in warnings]
    # the FiringRate metric measures the same
    assert report['metrics']['firing_rate/backbone.0.neuron'] == 0.0


def test_a_healthy_model_gets_no_warning(tmp_path):
    healthy = dict(type='LIF', alpha=0.5, theta=0.3)
    config, checkpoint = two_layer_checkpoint(tmp_path, healthy)
    console, report = bidl_test(tmp_path, config, checkpoint)
    assert 'WARNING - TrainingHealthHook' not in console
    assert 'health: all 2 spiking layers fired over the 6 test samples, ' \
        'none at a rate >= 0.95' in console
    health = report['health']
    assert health['warnings'] == []
    for name, layer in health['layers'].items():
        assert layer['condition'] is None
        assert layer['firing_rate'] == pytest.approx(
            report['metrics'][f'firing_rate/{name}'], rel=1e-6)


def test_the_config_can_turn_the_check_off(tmp_path):
    config, checkpoint = two_layer_checkpoint(tmp_path, SILENT)
    console, report = bidl_test(tmp_path, config, checkpoint,
                                '--cfg-options', 'default_hooks.health=None')
    assert 'TrainingHealthHook' not in console
    assert 'health:' not in console
    assert report['health'] is None


def test_health_summary_names_each_condition():
    health = dict(samples=10, saturated_rate=0.9, layers={
        'a': dict(firing_rate=0.0, spiking=True, condition='silent'),
        'b': dict(firing_rate=0.95, spiking=True, condition='saturated'),
        'c': dict(firing_rate=0.2, spiking=False, condition=None)})
    assert health_summary(health) == (
        'health: of 3 spiking layers over the 10 test samples, 1 silent (a) '
        'and 1 saturated (b); see the TrainingHealthHook warnings above')
    assert health_summary(None) is None
