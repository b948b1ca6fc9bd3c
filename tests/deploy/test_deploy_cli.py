"""bidl-deploy's command line and orchestration: ``--check`` (every
blocker at once, each with its config fix), ``--random-inputs`` (verify
without the dataset), a checkpoint that does not fit the config (one
line), and the one function that bidl-deploy and DeployHook both run.

Expectations come from the model and the config written here (which
layers carry which feature, which shapes the checkpoint has), never from
the code under test.
"""
import json
import os.path as osp
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from mmengine.registry import init_default_scope

from bidl_train.deploy.lower import LoweringError, lower_model
from bidl_train.errors import CheckpointError
from bidl_train.registry import MODELS

init_default_scope('bidl_train')
from helpers.paths import REPO

#: a ConvLifNet: layers.0 a Conv2dLif, layers.1 the flatten, layers.2 an
#: FcLif, all with the neuron given; the val split names a folder that
#: does not exist
CONFIG = '''
default_scope = 'bidl_train'
model = dict(
    type='SpikingClassifier',
    backbone=dict(type='ConvLifNet', in_channels=2, input_size=8,
                  channels=[4], pools=[None], fc=[8], fc_type='lif',
                  neuron={neuron!r}),
    head=dict(type='SpikingClsHead', in_features=8, num_classes=3))
val_dataloader = dict(
    batch_size=2, num_workers=0,
    dataset=dict(type='DVS128Gesture', data_root={data!r},
                 representation=dict(type='EventFrames', T=4, size=8)))
'''


def _config(tmp_path, neuron=None, name='cfg.py', data=None):
    neuron = neuron or dict(type='LIF')
    path = tmp_path / name
    path.write_text(CONFIG.format(neuron=neuron, data=str(
        data or tmp_path / 'no_such_dataset')))
    return str(path)


def _main(argv):
    from bidl_train.cli.deploy import main
    try:
        return main(argv)
    except SystemExit as err:
        return err.code


def _model(path):
    from bidl_train.cli.common import load_config
    return MODELS.build(load_config(path).model)


def _save(model, path):
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, path)
    return str(path)


# -- --check ---------------------------------------------------------------
def test_check_lists_every_nir_blocker_with_its_config_fix(tmp_path, capsys):
    """Two features NIR cannot express, on every spiking layer: analog
    output and a soft reset. Both layers and both fixes are listed at once
    (the old code had no --check, and the NIR check stopped at the
    first)."""
    pytest.importorskip('nir')
    path = _config(tmp_path, neuron=dict(type='LIF', mode='analog',
                                         reset='soft'))
    assert _main([path, '--check', '--target', 'nir']) == 2
    out = capsys.readouterr()
    # the conv layer and the FC layer of the ConvLifNet built above
    for layer in ('backbone.layers.0.neuron', 'backbone.layers.2.neuron'):
        assert f'  {layer}: analog (LIAF) output' in out.out
    assert 'fix: --cfg-options model.backbone.neuron.mode=spike' in out.out
    # analog output masks the soft reset on the same layer: found once the
    # first fix is made, with its own fix
    assert 'once those are fixed, the check finds:' in out.out
    assert 'soft reset' in out.out
    assert 'fix: --cfg-options model.backbone.neuron.reset=hard' in out.out
    assert 'with all 2 changes it deploys to nir' in out.out
    assert '2 blocker(s)' in out.err and 'Traceback' not in out.err
    # the fixes are real: the config with both deploys
    assert _main([path, '--check', '--target', 'nir', '--cfg-options',
                  'model.backbone.neuron.mode=spike',
                  'model.backbone.neuron.reset=hard']) == 0
    assert 'no blockers' in capsys.readouterr().out


def test_check_collects_blockers_of_different_layers_at_once(tmp_path):
    """Two different blockers on two different layers, both in the first
    list: the conv layer's neuron is ALIF (no NIR neuron), the FC layer's
    neuron has a soft reset. The lowering and the target's check each
    raise at the first; collecting mode records both."""
    pytest.importorskip('nir')
    from bidl_train.deploy.api import find_blockers
    from bidl_train.deploy.base import UnsupportedFeature
    from bidl_train.neurons import ALIF, LIF
    model = _model(_config(tmp_path)).eval()
    model.backbone.layers[0].neuron = ALIF(feature_shape=(4, 8, 8))
    model.backbone.layers[2].neuron = LIF(reset='soft', feature_shape=(8, ))
    x = (torch.rand(4, 1, 2, 8, 8) < 0.2).float()
    # an export still stops at the first (nothing is written)
    from bidl_train.deploy import get_target
    with pytest.raises(UnsupportedFeature, match='layers.0.neuron'):
        get_target('nir').check(lower_model(model, x[0]))
    found = {(b.layer, b.feature.split(' (')[0])
             for b in find_blockers(model, 'nir', x)}
    assert found == {('backbone.layers.0.neuron', 'ALIF neuron'),
                     ('backbone.layers.2.neuron', 'soft reset')}


def test_check_replaces_a_neuron_kind_the_target_lacks(tmp_path):
    """ALIF has no NIR neuron; its own argument (rho) is not LIF's, so
    changing the type alone does not build: the fix replaces the neuron
    config, and the config with it deploys."""
    pytest.importorskip('nir')
    from bidl_train.cli.common import load_config
    from bidl_train.deploy.check import check_config, format_check
    cfg = load_config(_config(tmp_path, neuron=dict(type='ALIF', rho=0.8)))
    result = check_config(cfg, 'nir')
    assert [b.layer for b in result.blockers] == [
        'backbone.layers.0.neuron', 'backbone.layers.2.neuron']
    fixes = {str(b.fix) for b in result.blockers}
    assert fixes == {"set model.backbone.neuron = dict(type='LIF') in the "
                     'config'}
    assert result.fixed_deploys and not result.later
    assert 'with all 1 change it deploys to nir' in format_check(
        result, 'cfg.py', 'nir', 'random weights')


def test_check_passes_a_deployable_config_without_checkpoint_or_data(
        tmp_path, capsys):
    path = _config(tmp_path)  # plain LIF: every target
    for target in ('torchscript', 'nir'):
        if target == 'nir':
            pytest.importorskip('nir')
        assert _main([path, '--check', '--target', target]) == 0
        assert 'no blockers' in capsys.readouterr().out
    assert not osp.exists(tmp_path / 'work_dirs')  # nothing written


def test_check_reports_an_unknown_layer_for_every_target(tmp_path):
    """A module with no lowering blocks every target; the walk goes on
    past it, to the next layer's synapse (an unknown op there too)."""
    from bidl_train.deploy.api import find_blockers
    model = _model(_config(tmp_path)).eval()
    model.backbone.layers[1] = torch.nn.GRU(4, 4)  # a layer
    model.backbone.layers[2].linear = torch.nn.Bilinear(8, 8, 8)  # an op
    with pytest.raises(LoweringError, match=r'layers\.1\b'):
        lower_model(model)  # an export stops at the first
    blockers = find_blockers(model, 'torchscript',
                             torch.zeros(4, 1, 2, 8, 8))
    assert [b.layer for b in blockers] == ['backbone.layers.1',
                                           'backbone.layers.2.linear']
    assert 'GRU' in blockers[0].feature
    assert 'Bilinear' in blockers[1].feature


# -- data-free export: --random-inputs -----------------------------------
def test_missing_data_is_one_line_naming_random_inputs(tmp_path, capsys):
    path = _config(tmp_path)
    ckpt = _save(_model(path), tmp_path / 'ck.pth')
    out = tmp_path / 'out'
    assert _main([path, ckpt, '--target', 'torchscript', '--out',
                  str(out)]) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith('bidl-deploy: error: no data to verify')
    assert 'not on disk' in lines[0] and '--random-inputs' in lines[0]
    assert not out.exists()


def test_random_inputs_verify_without_the_dataset(tmp_path, capsys):
    path = _config(tmp_path)
    ckpt = _save(_model(path), tmp_path / 'ck.pth')
    out = tmp_path / 'out'
    assert _main([path, ckpt, '--target', 'torchscript', '--out', str(out),
                  '--random-inputs', '3']) == 0
    report = json.load(open(out / 'report.json'))
    assert report['status'] == 'verified'
    inputs = report['verification_inputs']
    # T = 4 from the dataset's representation, [2, 8, 8] from the backbone
    assert inputs['kind'] == 'random' and inputs['samples'] == 3
    assert inputs['shape'] == [4, 2, 8, 8]
    assert 'not on disk' in inputs['reason']
    assert report['verification']['samples'] == 3
    assert report['accuracy'] is None  # no labels: no accuracy claimed
    console = capsys.readouterr().out
    assert 'random binary frames' in console and 'not data' in console
    # bare --random-inputs: as many as --verify
    assert _main([path, ckpt, '--target', 'torchscript', '--out', str(out),
                  '--verify', '2', '--random-inputs']) == 0
    assert json.load(open(out / 'report.json'))[
        'verification_inputs']['samples'] == 2


def test_random_inputs_are_not_used_when_the_data_is_there(tmp_path):
    """With the data on disk the option changes nothing: data is used."""
    from helpers.deploy_runner import tiny_deploy_config
    path = tmp_path / 'synthetic.py'
    path.write_text(tiny_deploy_config(tmp_path / 'data', users_test=1))
    ckpt = _save(_model(str(path)), tmp_path / 'ck.pth')
    out = tmp_path / 'out'
    assert _main([str(path), ckpt, '--target', 'torchscript', '--out',
                  str(out), '--verify', '2', '--random-inputs', '5']) == 0
    report = json.load(open(out / 'report.json'))
    assert report['verification_inputs'] == dict(kind='data', split='val',
                                                 samples=2)
    assert report['accuracy']['samples'] == 2


def test_random_inputs_refuse_reduced_precision(tmp_path, capsys):
    path = _config(tmp_path)
    ckpt = _save(_model(path), tmp_path / 'ck.pth')
    assert _main([path, ckpt, '--target', 'torchscript', '--out',
                  str(tmp_path / 'out'), '--precision', 'fp16',
                  '--random-inputs', '2']) == 2
    assert 'random inputs have none' in capsys.readouterr().err


# -- a checkpoint that does not fit ----------------------------------------
def test_checkpoint_of_another_config_is_one_line(tmp_path, capsys):
    """A checkpoint of a wider conv: the first mismatched key with both
    shapes, plus a missing and an unexpected key by name."""
    path = _config(tmp_path)
    model = _model(path)
    state = model.state_dict()
    key = 'backbone.layers.0.conv.weight'
    assert list(state[key].shape) == [4, 2, 3, 3]
    state[key] = torch.zeros(6, 2, 3, 3)
    del state['head.fc.bias']
    state['head.extra'] = torch.zeros(1)
    ckpt = tmp_path / 'other.pth'
    torch.save({'state_dict': state}, ckpt)
    assert _main([path, str(ckpt), '--target', 'torchscript', '--out',
                  str(tmp_path / 'out'), '--random-inputs']) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and 'Traceback' not in err, err
    assert (f'{key} has shape [6, 2, 3, 3] in the checkpoint but '
            '[4, 2, 3, 3] in the model') in lines[0]
    assert 'missing keys head.fc.bias' in lines[0]
    assert 'unexpected keys head.extra' in lines[0]


def test_analyze_uses_the_same_loader(tmp_path):
    """tools/analyze.py refuses the same checkpoint with the same line
    (it printed a RuntimeError traceback before)."""
    path = _config(tmp_path)
    state = _model(path).state_dict()
    state['head.fc.weight'] = torch.zeros(5, 8)
    ckpt = tmp_path / 'other.pth'
    torch.save(state, ckpt)  # a bare state dict
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'analyze.py'), path,
         str(ckpt), '--random', '--batches', '1'],
        capture_output=True, text=True, timeout=300,
        env={'PYTHONPATH': REPO, 'PATH': '/usr/bin:/bin',
             'OMP_NUM_THREADS': '1'})
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert 'Traceback' not in proc.stderr
    assert ('head.fc.weight has shape [5, 8] in the checkpoint but [3, 8] '
            'in the model') in proc.stderr


def test_load_model_weights_strips_module_prefix_and_loads(tmp_path):
    from bidl_train.engine.checkpoint import load_model_weights
    path = _config(tmp_path)
    torch.manual_seed(3)
    source = _model(path)
    state = {f'module.{k}': v for k, v in source.state_dict().items()}
    ckpt = tmp_path / 'wrapped.pth'
    torch.save({'state_dict': state}, ckpt)
    target = _model(path)
    load_model_weights(target, str(ckpt))
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    torch.save({'state_dict': {'x': torch.zeros(1)}}, ckpt)
    with pytest.raises(CheckpointError, match='missing keys .*unexpected '
                       'keys x'):
        load_model_weights(target, str(ckpt))


# -- one orchestration ------------------------------------------------------
def test_cli_and_hook_run_the_same_function(tmp_path, monkeypatch):
    """bidl-deploy and DeployHook both go through deploy_from_config: a
    spy on it sees both calls, with the same samples options."""
    from bidl_train.engine import deploy as engine_deploy
    from bidl_train.engine.hooks.deploy import DeployHook
    calls = []
    real = engine_deploy.deploy_from_config

    def spy(cfg, target, out_dir, **kwargs):
        calls.append((target, kwargs.get('checkpoint') is not None,
                      kwargs.get('random_inputs')))
        return real(cfg, target, out_dir, **kwargs)
    monkeypatch.setattr(engine_deploy, 'deploy_from_config', spy)
    path = _config(tmp_path)
    model = _model(path)
    ckpt = _save(model, tmp_path / 'ck.pth')
    assert _main([path, ckpt, '--target', 'torchscript', '--out',
                  str(tmp_path / 'cli'), '--random-inputs', '2']) == 0

    from bidl_train.cli.common import load_config
    logs = []
    runner = SimpleNamespace(
        rank=0, model=model.train(), cfg=load_config(path),
        work_dir=str(tmp_path / 'work'), epoch=1, iter=4,
        logger=SimpleNamespace(info=logs.append, error=logs.append))
    hook = DeployHook(targets=['torchscript'], verify=2, random_inputs=2)
    hook.after_train(runner)
    assert calls == [('torchscript', True, 2), ('torchscript', False, 2)]
    report = hook.reports['torchscript']
    assert report['status'] == 'verified'
    assert report['verification_inputs']['kind'] == 'random'
    assert model.training  # the hook gives the model back as it found it
    cli = json.load(open(tmp_path / 'cli' / 'report.json'))
    # same weights, same random inputs: the same verification
    assert cli['verification_inputs'] == report['verification_inputs']
    assert cli['verification']['max_abs_diff'].keys() == \
        report['verification']['max_abs_diff'].keys()


def test_hook_without_data_logs_the_refusal_per_target(tmp_path):
    from bidl_train.cli.common import load_config
    from bidl_train.engine.hooks.deploy import DeployHook
    path = _config(tmp_path)
    logs = []
    runner = SimpleNamespace(
        rank=0, model=_model(path), cfg=load_config(path),
        work_dir=str(tmp_path / 'work'), epoch=1, iter=4,
        logger=SimpleNamespace(info=logs.append, error=logs.append))
    DeployHook(targets=['torchscript'], verify=2).after_train(runner)
    assert len(logs) == 1 and 'random_inputs=N' in logs[0]
    with pytest.raises(Exception, match='random_inputs'):
        DeployHook(targets=['torchscript'], random_inputs=0)
