"""YAML configs are data: no form of one may import or run chosen code.

Each attack writes a marker file if it gets to run. Through the commands
(``bidl-train``, ``bidl-test``, ``bidl-deploy``) every attack must end with
exit status 2, a one-line error naming the offending key, and no marker.
"""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import yaml
from mmengine.config import Config

from bidl_train.cli import config_safety
from bidl_train.cli.common import load_config
from bidl_train.errors import ConfigError

from helpers.paths import REPO
DEMO = osp.join(REPO, 'configs', 'demo', 'synthetic_gesture.py')
DRIVER = osp.join(REPO, 'tests', 'helpers', 'yaml_cli_driver.py')


@pytest.fixture(autouse=True)
def _registry_imports_back_on():
    """load_config(YAML) makes the process strict; later tests start lax."""
    yield
    config_safety.restrict_registry_imports(False)


def _env(extra_path=None):
    path = [REPO] + ([str(extra_path)] if extra_path else [])
    return dict(os.environ, PYTHONPATH=os.pathsep.join(path),
                OMP_NUM_THREADS='1')


def _write_module(folder, name, marker):
    """A module that creates ``marker`` when imported."""
    folder.mkdir(exist_ok=True)
    (folder / f'{name}.py').write_text(
        f'open({str(marker)!r}, "w").close()\n')


# ---------------------------------------------------------------------------
# The attacks. Each: a YAML text (``{marker}``, ``{mods}`` filled in), the
# text the error must contain, and the commands it is tried with.
# ---------------------------------------------------------------------------
ON_DEMO = f'_base_: [{DEMO!r}]\n'
ALL = ('train', 'test', 'deploy')

ATTACKS = {
    # any importable callable as a type, built with the config's arguments
    # (_delete_ drops the demo's model keys, so the call gets only ours)
    'os_system': (ON_DEMO + 'model: {{_delete_: true, type: os.system, '
                  'command: "touch {marker}"}}\n', "model.type='os.system'",
                  ALL),
    'builtins_open': (ON_DEMO + 'model: {{_delete_: true, type: '
                      'builtins.open, file: "{marker}", mode: w}}\n',
                      "model.type='builtins.open'", ALL),
    # nested in a list inside a dict
    'subprocess_in_list': (
        ON_DEMO + 'custom_hooks:\n  - {{type: NanGuardHook}}\n'
        '  - {{type: subprocess.call, args: [touch, "{marker}"]}}\n',
        "custom_hooks[1].type='subprocess.call'", ALL),
    'builtins_eval': (
        ON_DEMO + 'model:\n  backbone:\n    neuron: {{type: builtins.eval, '
        'source: "open(\'{marker}\', \'w\')"}}\n',
        "model.backbone.neuron.type='builtins.eval'", ALL),
    # a dotted path to a real, importable bidl_train class that no
    # registry holds: only registry names are accepted
    'unregistered_bidl_class': (
        ON_DEMO + 'train_dataloader:\n  dataset: {{type: '
        'bidl_train.datasets.seeding.TransformRNG}}\n',
        "train_dataloader.dataset.type='bidl_train.datasets.seeding."
        "TransformRNG'", ALL),
    # a dotted path even to a registered class is not a registry name
    'dotted_registered_class': (
        ON_DEMO + 'model: {{backbone: {{type: '
        'bidl_train.models.backbones.conv_lif.ConvLifNet}}}}\n',
        'Did you mean ConvLifNet', ('train', )),
    'non_string_type': (ON_DEMO + 'model: {{type: [os, system]}}\n',
                        "model.type=['os', 'system']", ALL),
    # imports a module while the config is read
    'custom_imports': (ON_DEMO + 'custom_imports: {{imports: [pwn_ci]}}\n',
                       'custom_imports', ALL),
    # a foreign scope imports <scope>.registry, i.e. the package
    'default_scope': (ON_DEMO + 'default_scope: pwn_scope\n',
                      "default_scope='pwn_scope'", ALL),
    'scope_key': (ON_DEMO + 'model: {{_scope_: pwn_scope2}}\n',
                  "model._scope_='pwn_scope2'", ALL),
    'scoped_type': (ON_DEMO + 'model: {{backbone: {{neuron: '
                    '{{type: pwn_scoped.LIF}}}}}}\n',
                    "model.backbone.neuron.type='pwn_scoped.LIF'", ALL),
    # a Python base file is executed
    'python_base': ('_base_: [evil.py]\n', "_base_ 'evil.py'", ALL),
    # ... also deeper down: leaf.yaml -> middle.yaml -> evil.py
    'nested_python_base': ('_base_: [middle.yaml]\n',
                           'middle.yaml', ALL),
    # a string that reaches a registry outside a `type` key: the registry
    # would import pwn_bare while looking up 'pwn_bare.LIF'
    'bare_string_neuron': (
        ON_DEMO + 'model: {{backbone: {{neuron: pwn_bare.LIF}}}}\n',
        "'pwn_bare.LIF'", ALL),
    # a registered name (a metric) in the hooks section: the hook registry
    # would import a module named Accuracy
    'registered_name_wrong_section': (
        ON_DEMO + 'custom_hooks: [{{type: Accuracy}}]\n',
        "'Accuracy'", ('train', 'test')),
}

#: cases whose payload is a module imported by name: (module, attack)
MODULE_PAYLOADS = {
    'custom_imports': 'pwn_ci', 'default_scope': 'pwn_scope',
    'scope_key': 'pwn_scope2', 'scoped_type': 'pwn_scoped',
    'bare_string_neuron': 'pwn_bare',
    'registered_name_wrong_section': 'Accuracy'
}


def _make_attack(tmp_path, case):
    """Write the attack's files; return (config path, marker path)."""
    text, needle, commands = ATTACKS[case]
    folder = tmp_path / case
    folder.mkdir()
    marker = tmp_path / f'pwned_{case}'
    if case in MODULE_PAYLOADS:
        _write_module(tmp_path / 'mods', MODULE_PAYLOADS[case], marker)
    if case in ('python_base', 'nested_python_base'):
        (folder / 'evil.py').write_text(
            f'open({str(marker)!r}, "w").close()\nx = 1\n')
        (folder / 'middle.yaml').write_text('_base_: [evil.py]\ny: 2\n')
    path = folder / 'x.yaml'
    path.write_text(text.format(marker=marker))
    return str(path), marker


@pytest.mark.parametrize('case', sorted(ATTACKS))
def test_load_config_refuses_attack(tmp_path, case, monkeypatch):
    path, marker = _make_attack(tmp_path, case)
    monkeypatch.syspath_prepend(str(tmp_path / 'mods'))
    if case in ('bare_string_neuron', 'registered_name_wrong_section'):
        # valid names in the config's own terms: refused when built
        load_config(path)
        return
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert '\n' not in message
    assert ATTACKS[case][1] in message
    assert 'x.yaml' in message
    assert not marker.exists()


def test_attacks_through_the_commands(tmp_path):
    """Every attack, with each command: exit 2, one line, no marker."""
    spec, markers = [], {}
    # an existing (not loadable) checkpoint: the commands get as far as
    # building the model before they would read it
    ckpt = tmp_path / 'dummy.pth'
    ckpt.write_bytes(b'not a checkpoint')
    for case in sorted(ATTACKS):
        path, markers[case] = _make_attack(tmp_path, case)
        for cmd in ATTACKS[case][2]:
            argv = {'train': [path, '--work-dir', str(tmp_path / 'w')],
                    'test': [path, str(ckpt), '--work-dir',
                             str(tmp_path / 'w')],
                    'deploy': [path, str(ckpt), '--target',
                               'onnx']}[cmd]
            spec.append(dict(case=case, cmd=cmd, argv=argv))
    # an override typed on the command line obeys the same rule
    demo_yaml = tmp_path / 'demo.yaml'
    demo_yaml.write_text(ON_DEMO)
    spec.append(dict(case='cfg_options', cmd='train', argv=[
        str(demo_yaml), '--cfg-options', 'model.backbone.type=os.getcwd']))
    results = _drive(tmp_path, spec)
    for item in results:
        where = f"{item['case']} via bidl-{item['cmd']}: {item['stderr']!r}"
        assert item['code'] == 2, where
        lines = [line for line in item['stderr'].splitlines()
                 if line.startswith(f"bidl-{item['cmd']}: error: ")]
        assert len(lines) == 1, where
        assert item['stderr'].rstrip().endswith(lines[0]), where
        assert 'Traceback' not in item['stderr'], where
        needle = ATTACKS[item['case']][1] if item['case'] in ATTACKS else \
            "with --cfg-options: model.backbone.type='os.getcwd'"
        assert needle in lines[0], where
    for case, marker in markers.items():
        assert not marker.exists(), f'{case}: the payload ran'


def _drive(tmp_path, spec, cwd=None):
    spec_path = tmp_path / 'spec.json'
    result_path = tmp_path / 'result.json'
    spec_path.write_text(json.dumps(spec))
    proc = subprocess.run(
        [sys.executable, DRIVER, str(spec_path), str(result_path)],
        cwd=cwd or tmp_path, env=_env(tmp_path / 'mods'),
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(result_path.read_text())


def test_real_command_line_refuses_and_runs_nothing(tmp_path):
    """``python -m bidl_train.cli.train x.yaml``: the process a user runs,
    with the current directory (and its modules) on sys.path."""
    path, marker = _make_attack(tmp_path, 'os_system')
    proc = subprocess.run(
        [sys.executable, '-m', 'bidl_train.cli.train', path],
        cwd=tmp_path, env=_env(), capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f"bidl-train: error: config {path}: model.type='os.system' is not a "
        'registered bidl-train/mmengine type; YAML configs may only name '
        'registered types (Python configs are code: write one to use '
        'other callables).')
    assert not marker.exists()


# ---------------------------------------------------------------------------
# The run-time guard (strings outside `type` keys)
# ---------------------------------------------------------------------------
def test_registry_lookup_imports_nothing_after_a_yaml_config(
        tmp_path, monkeypatch):
    from bidl_train.registry import HOOKS, MODELS
    marker = tmp_path / 'pwned'
    _write_module(tmp_path / 'mods', 'pwn_lookup', marker)
    monkeypatch.syspath_prepend(str(tmp_path / 'mods'))
    monkeypatch.delitem(sys.modules, 'pwn_lookup', raising=False)
    (tmp_path / 'ok.yaml').write_text(ON_DEMO)
    load_config(str(tmp_path / 'ok.yaml'))
    assert MODELS.get('pwn_lookup.LIF') is None  # scope import refused
    assert MODELS.get('pwn_lookup') is None  # dotted fallback refused
    assert HOOKS.get('os.system') is None
    assert not marker.exists() and 'pwn_lookup' not in sys.modules
    # registered names still resolve, scoped ones too
    assert MODELS.get('LIF').__name__ == 'LIF'
    from mmengine.registry import FUNCTIONS
    assert FUNCTIONS.get('bidl_train.seed_worker').__name__ == 'seed_worker'


def test_python_configs_keep_dotted_paths(tmp_path):
    """A Python config is code: after one, dotted paths resolve again."""
    from bidl_train.registry import MODELS
    (tmp_path / 'ok.yaml').write_text(ON_DEMO)
    load_config(str(tmp_path / 'ok.yaml'))
    assert MODELS.get('torch.nn.ReLU') is None
    (tmp_path / 'code.py').write_text(
        f'_base_ = [{DEMO!r}]\nmodel = dict(backbone=dict('
        "neuron=dict(type='bidl_train.neurons.LIF')))\n")
    cfg = load_config(str(tmp_path / 'code.py'))
    assert cfg.model.backbone.neuron.type == 'bidl_train.neurons.LIF'
    import torch.nn as nn
    assert MODELS.get('torch.nn.ReLU') is nn.ReLU


# ---------------------------------------------------------------------------
# What stays allowed
# ---------------------------------------------------------------------------
def test_yaml_bases_json_and_builder_words_load(tmp_path):
    (tmp_path / 'base.json').write_text(json.dumps(
        dict(model=dict(type='SpikingClassifier',
                        backbone=dict(type='ConvLifNet',
                                      layers=[dict(type='Flatten')])))))
    (tmp_path / 'mid.yml').write_text(
        '_base_: base.json\noptim_wrapper:\n  type: OptimWrapper\n'
        '  clip_grad: {max_norm: 1.0, type: norm}\n'
        '  constructor: DefaultOptimWrapperConstructor\n')
    (tmp_path / 'top.yaml').write_text(
        '_base_: [mid.yml]\nmodel:\n  backbone:\n    neuron:\n'
        '      type: LIF\n      surrogate: {type: sigmoid}\n'
        'custom_hooks: [{type: NanGuardHook}]\n'
        'default_scope: bidl_train\n'
        'train_dataloader: {collate_fn: {type: default_collate},\n'
        '  worker_init_fn: {type: bidl_train.seed_worker}}\n')
    cfg = load_config(str(tmp_path / 'top.yaml'))
    assert cfg.model.backbone.layers[0].type == 'Flatten'
    assert cfg.optim_wrapper.clip_grad.type == 'norm'
    assert cfg.model.backbone.neuron.surrogate.type == 'sigmoid'


def test_constructor_key_is_checked_too(tmp_path):
    (tmp_path / 'x.yaml').write_text(
        'optim_wrapper: {type: OptimWrapper, constructor: os.system}\n')
    with pytest.raises(ConfigError,
                       match=r"optim_wrapper\.constructor='os\.system'"):
        load_config(str(tmp_path / 'x.yaml'))


def test_python_base_outside_shipped_configs_is_refused_even_by_symlink(
        tmp_path):
    # a link into configs/ is our code (allowed); a path that leaves
    # configs/ through '..' is not
    evil = tmp_path / 'evil.py'
    evil.write_text(f'open({str(tmp_path / "pwned")!r}, "w").close()\n')
    runtime = osp.join(REPO, 'configs', '_base_', 'default_runtime.py')
    os.symlink(runtime, tmp_path / 'runtime_link.py')
    (tmp_path / 'ok.yaml').write_text('_base_: [runtime_link.py]\n')
    assert 'default_hooks' in load_config(str(tmp_path / 'ok.yaml'))
    inside = osp.join(REPO, 'configs', '_base_')
    rel = osp.relpath(evil, inside)  # configs/_base_/../../../tmp/evil.py
    (tmp_path / 'up.yaml').write_text(
        f'_base_: [{osp.join(inside, rel)!r}]\n')
    with pytest.raises(ConfigError, match='is not a YAML/JSON file'):
        load_config(str(tmp_path / 'up.yaml'))
    assert not (tmp_path / 'pwned').exists()


@pytest.mark.slow
def test_shipped_configs_load_as_yaml_bases_and_yaml_demo_runs(tmp_path):
    """In a fresh process (registries filled only from their locations):
    every shipped top-level config, inherited by a YAML file, passes the
    check; the demo written out as plain YAML trains, tests and deploys."""
    shipped = sorted(
        osp.join(d, f)
        for d, _, files in os.walk(osp.join(REPO, 'configs'))
        if '_base_' not in d.split(osp.sep) for f in files
        if f.endswith('.py'))
    assert len(shipped) > 10
    spec = []
    # a config that inherits the shipped one and runs nothing: bidl-test
    # stops at the missing checkpoint, after the config was read and checked
    for i, path in enumerate(shipped):
        wrapper = tmp_path / f'wrap{i}.yaml'
        wrapper.write_text(f'_base_: [{path!r}]\n')
        spec.append(dict(case=path, cmd='test', argv=[
            str(wrapper), str(tmp_path / 'missing.pth')]))
    demo = _plain_yaml_demo(tmp_path)
    work = tmp_path / 'work'
    # test and deploy read the copy the run wrote into its work dir (with
    # the tuple the override made)
    copy = str(work / 'demo_plain.yaml')
    spec += [
        dict(case='train', cmd='train', argv=[
            demo, '--work-dir', str(work), '--cfg-options',
            'model.backbone.channels=(4,4,4)']),
        dict(case='test', cmd='test', argv=[
            copy, str(work / 'epoch_1.pth'), '--work-dir', str(work)]),
        dict(case='deploy', cmd='deploy', argv=[
            copy, str(work / 'epoch_1.pth'), '--target', 'torchscript',
            '--verify', '2', '--out', str(tmp_path / 'ts')]),
    ]
    results = _drive(tmp_path, spec)
    for item in results[:len(shipped)]:
        assert item['code'] == 2 and 'missing.pth does not exist' in \
            item['stderr'], f"{item['case']}: {item['stderr'][-2000:]}"
    for item in results[len(shipped):]:
        assert item['code'] == 0, f"{item['case']}: {item['stderr'][-3000:]}"
    assert (work / 'epoch_1.pth').is_file()
    report = json.loads((tmp_path / 'ts' / 'report.json').read_text())
    assert report['status'] == 'verified'


def test_yaml_config_written_by_a_run_reads_back(tmp_path):
    """The Runner copies the config into the work dir with mmengine's
    dump; tuples there must not become ``!!python/tuple`` tags."""
    from mmengine.config import DictAction
    (tmp_path / 'x.yaml').write_text(ON_DEMO)
    action = DictAction(option_strings=[], dest='o')

    class NS:
        pass

    action(None, NS, ['model.backbone.channels=(4,4,4)'])
    cfg = load_config(str(tmp_path / 'x.yaml'), NS.o)
    assert cfg.model.backbone.channels == (4, 4, 4)
    cfg.dump(str(tmp_path / 'copy.yaml'))
    assert '!!python' not in (tmp_path / 'copy.yaml').read_text()
    again = load_config(str(tmp_path / 'copy.yaml'))
    assert _plain(again.to_dict()) == _plain(cfg.to_dict())
    assert again.model.backbone.channels == [4, 4, 4]


def _plain_yaml_demo(tmp_path):
    """The demo config, shrunk to seconds, as one YAML file (no bases)."""
    data = str(tmp_path / 'data')
    gen = dict(data_root=data, users_train=2, users_test=1, conditions=1)
    cfg = Config.fromfile(DEMO)
    cfg.merge_from_dict({
        'train_dataloader.batch_size': 4, 'val_dataloader.batch_size': 4,
        'test_dataloader.batch_size': 4, 'train_cfg.max_epochs': 1,
        'model.backbone.channels': [4, 4, 4], 'model.backbone.fc': [16],
        'model.head.in_features': 16, 'default_hooks.logger.interval': 1})
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.update(gen)
    path = tmp_path / 'demo_plain.yaml'
    path.write_text(yaml.safe_dump(_plain(cfg.to_dict())))
    return str(path)


def _plain(node):
    """Tuples to lists, so that the safe dumper writes plain YAML."""
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_plain(v) for v in node]
    return node
