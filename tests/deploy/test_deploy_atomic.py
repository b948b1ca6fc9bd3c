"""A deploy output folder is replaced all at once, and its report names
the weights it was made from.

``<out>`` must always hold artefacts and a ``report.json`` of the same
deploy: a deploy that fails (an exception) or is killed (SIGKILL at a
chosen point, in a child process) leaves the previous output byte for
byte, and the next deploy cleans up what the killed one left. Checkpoint
hashes are recomputed here with hashlib, never read back from our code.
"""
import datetime
import hashlib
import json
import os
import os.path as osp
import signal
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope

import bidl_train
from bidl_train.deploy import api, deploy
from bidl_train.deploy.outdir import leftover_folders
from bidl_train.deploy.report import checkpoint_source
from bidl_train.engine.hooks.deploy import weights_source
from bidl_train.errors import ConfigError
from helpers.deploy_runner import tiny_inputs, tiny_model
from helpers.paths import REPO, TESTS
from bidl_train.registry import MODELS
from helpers.deploy_runner import tiny_deploy_config

init_default_scope('bidl_train')


def snapshot(folder):
    """``{relative path: bytes}`` of every file under ``folder``."""
    files = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = osp.join(root, name)
            with open(path, 'rb') as f:
                files[osp.relpath(path, folder)] = f.read()
    return files


def sha256(path):
    return hashlib.sha256(open(path, 'rb').read()).hexdigest()


def save_checkpoint(model, path):
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, path)
    return str(path)


def assert_consistent(out, model, target='torchscript'):
    """``out`` holds exactly the files its report names, and the step graph
    there computes ``model``'s logits."""
    report = json.load(open(out / 'report.json'))
    assert sorted(os.listdir(out)) == sorted(report['files'].values())
    x = tiny_inputs()
    with torch.no_grad():
        want = model(x, mode='tensor')
    assert target == 'torchscript'
    unrolled = torch.jit.load(str(out / 'unrolled.pt'))
    with torch.no_grad():
        torch.testing.assert_close(unrolled(x), want, atol=1e-5, rtol=0)
    return report


def only_entry(parent, name='out'):
    """The parent of ``<out>`` holds ``<out>`` and nothing else: no
    temporary or set-aside folder is left behind."""
    assert sorted(os.listdir(parent)) == [name]


@pytest.fixture
def previous(tmp_path):
    """A complete earlier deploy of model 1 in ``tmp_path/deploy/out``."""
    out = tmp_path / 'deploy' / 'out'
    ckpt = save_checkpoint(tiny_model(1), tmp_path / 'one.pth')
    deploy(tiny_model(1), 'torchscript', tiny_inputs(), str(out),
           source=checkpoint_source(ckpt))
    return out, snapshot(out)


@pytest.mark.parametrize('stage', ['export', 'verify'])
def test_failed_deploy_leaves_previous_output_untouched(previous, stage,
                                                        monkeypatch):
    out, before = previous
    assert json.load(open(out / 'report.json'))['status'] == 'verified'

    def broken(*args, **kwargs):
        raise RuntimeError(f'{stage} broke')
    if stage == 'export':
        # the exporter writes a first artefact, then dies
        target = type(api.get_target('torchscript'))
        export = target.export

        def broken(self, step_net, x, out_dir):  # noqa: F811
            export(self, step_net, x, out_dir)
            raise RuntimeError('export broke')
        monkeypatch.setattr(target, 'export', broken)
    else:
        monkeypatch.setattr(api, 'verify', broken)
    with pytest.raises(RuntimeError, match=f'{stage} broke'):
        deploy(tiny_model(2), 'torchscript', tiny_inputs(), str(out))
    assert snapshot(out) == before
    only_entry(out.parent)


# A child process deploys model 3 over ``out`` and SIGKILLs itself at a
# chosen point: right after the exporter wrote the artefacts (before the
# report), or between the two renames that replace ``out``.
CHILD = '''
import os, signal, sys
sys.path.insert(0, {tests!r})
from helpers.deploy_runner import tiny_inputs, tiny_model
from bidl_train.deploy import api, deploy, outdir
point, out = sys.argv[1:]

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

if point == 'after_export':
    target = type(api.get_target('torchscript'))
    export = target.export

    def export_then_die(self, *args):
        export(self, *args)
        die()
    target.export = export_then_die
else:
    outdir._move_in = die
deploy(tiny_model(3), 'torchscript', tiny_inputs(), out)
'''


def _killed_deploy(out, point):
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    with subprocess.Popen(
            [sys.executable, '-c', CHILD.format(tests=TESTS), point,
             str(out)], env=env, stderr=subprocess.PIPE, text=True) as proc:
        stderr = proc.communicate(timeout=300)[1]
    assert proc.returncode == -signal.SIGKILL, stderr[-2000:]
    return proc.pid


@pytest.mark.slow
def test_deploy_killed_after_export_keeps_old_output(previous):
    """The old code wrote new artefacts beside the old "verified" report:
    here ``out`` is still the old output, and the next deploy removes the
    unfinished folder and says so in its report."""
    out, before = previous
    pid = _killed_deploy(out, 'after_export')
    assert snapshot(out) == before
    left = leftover_folders(out)
    assert [(kind, p) for kind, p, _ in left] == [('tmp', pid)]
    assert 'step.pt' in os.listdir(left[0][2])  # it really was killed late
    report = deploy(tiny_model(2), 'torchscript', tiny_inputs(), str(out))
    assert report['recovered'] == [
        f'removed {osp.basename(left[0][2])}: the unfinished output of a '
        'killed deploy']
    only_entry(out.parent)
    assert assert_consistent(out, tiny_model(2)) == report


@pytest.mark.slow
def test_deploy_killed_between_renames_is_undone(previous, monkeypatch):
    """Killed after setting the old output aside, before moving the new
    one in: the next deploy puts the old one back first, so even when that
    deploy fails, ``out`` is the old output again."""
    out, before = previous
    pid = _killed_deploy(out, 'between_renames')
    assert not out.exists()
    assert sorted((kind, p) for kind, p, _ in leftover_folders(out)) == [
        ('old', pid), ('tmp', pid)]

    def broken(*args, **kwargs):
        raise RuntimeError('verify broke')
    monkeypatch.setattr(api, 'verify', broken)
    with pytest.raises(RuntimeError, match='verify broke'):
        deploy(tiny_model(2), 'torchscript', tiny_inputs(), str(out))
    assert snapshot(out) == before
    only_entry(out.parent)


def test_folders_of_a_live_deploy_are_left_alone(previous):
    out, _ = previous
    busy = out.parent / f'out.tmp-{os.getpid()}-0123abcd'
    busy.mkdir()
    report = deploy(tiny_model(2), 'torchscript', tiny_inputs(), str(out))
    assert report['recovered'] == [] and busy.is_dir()


def test_redeploy_replaces_artefacts_and_report_together(previous, tmp_path):
    """ONNX over an earlier TorchScript output: none of the old files stay
    beside the new report, whose checkpoint is the new one."""
    pytest.importorskip('onnxruntime')
    out, _ = previous
    ckpt = save_checkpoint(tiny_model(2), tmp_path / 'two.pth')
    report = deploy(tiny_model(2), 'onnx', tiny_inputs(), str(out),
                    source=checkpoint_source(ckpt))
    assert sorted(os.listdir(out)) == sorted(report['files'].values())
    assert 'step.pt' not in os.listdir(out)
    assert json.load(open(out / 'report.json')) == report
    assert report['source']['checkpoint']['sha256'] == sha256(ckpt)
    only_entry(out.parent)
    # and back to TorchScript, the artefacts being those of model 2
    deploy(tiny_model(2), 'torchscript', tiny_inputs(), str(out))
    assert_consistent(out, tiny_model(2))


def test_mismatch_is_put_in_place_with_a_report_that_says_so(previous,
                                                             monkeypatch):
    """A verification that finds a disagreement is a finished deploy: its
    artefacts replace the old ones and the report says MISMATCH."""
    out, _ = previous
    monkeypatch.setattr(api, 'failed_checks', lambda ver: [
        dict(check='spike agreement', value=0.5, limit=1.0)])
    report = deploy(tiny_model(2), 'torchscript', tiny_inputs(), str(out))
    assert report['status'] == 'MISMATCH'
    assert assert_consistent(out, tiny_model(2))['status'] == 'MISMATCH'
    only_entry(out.parent)


@pytest.mark.parametrize('extra', ['notes.txt', 'report.json'])
def test_out_with_other_content_is_refused_untouched(tmp_path, extra):
    """A deploy replaces the whole folder, so it refuses one holding
    anything its own report does not name (a report.json by itself names
    nothing here: it is not a deploy report)."""
    out = tmp_path / 'mine'
    out.mkdir()
    (out / extra).write_text('keep me')
    with pytest.raises(ConfigError, match=f'{out}.*{extra}'):
        deploy(tiny_model(1), 'torchscript', tiny_inputs(), str(out))
    assert snapshot(out) == {extra: b'keep me'}
    only_entry(tmp_path, 'mine')


def test_out_that_is_the_working_directory_or_a_file_is_refused(
        previous, monkeypatch):
    """Replacing the current directory would pull the folder out from
    under the user's shell; a file is not an output folder."""
    out, before = previous
    monkeypatch.chdir(out)
    with pytest.raises(ConfigError, match='current directory'):
        deploy(tiny_model(2), 'torchscript', tiny_inputs(), '.')
    assert snapshot(out) == before
    only_entry(out.parent)
    with pytest.raises(ConfigError, match='not a folder'):
        deploy(tiny_model(2), 'torchscript', tiny_inputs(), 'report.json')
    assert snapshot(out) == before


def test_report_names_its_provenance(tmp_path):
    ckpt = save_checkpoint(tiny_model(1), tmp_path / 'one.pth')
    cfg = tmp_path / 'cfg.py'
    cfg.write_text('')
    start = datetime.datetime.now(datetime.timezone.utc)
    report = deploy(tiny_model(1), 'torchscript', tiny_inputs(),
                    str(tmp_path / 'out'),
                    source=checkpoint_source(ckpt, str(cfg)))
    assert report['source'] == dict(
        weights='checkpoint', config=str(cfg),
        checkpoint=dict(path=ckpt, sha256=sha256(ckpt),
                        size_bytes=len(open(ckpt, 'rb').read())))
    created = datetime.datetime.fromisoformat(report['created'])
    assert start.replace(microsecond=0) <= created <= \
        datetime.datetime.now(datetime.timezone.utc)
    assert report['versions'] == dict(bidl_train=bidl_train.__version__,
                                      torch=torch.__version__)
    assert (report['target'], report['precision']) == ('torchscript', 'fp32')
    # a caller that names no checkpoint gets a report that says so
    plain = deploy(tiny_model(1), 'torchscript', tiny_inputs(),
                   str(tmp_path / 'plain'))
    assert plain['source']['weights'] == 'in-memory'
    assert plain['source']['checkpoint'] is None


@pytest.fixture
def cli_setup(tmp_path, monkeypatch):
    """A tiny config and a checkpoint for it; the working directory is a
    different folder, so relative paths must be resolved in the report."""
    cfg = tmp_path / 'tiny.py'
    cfg.write_text(tiny_deploy_config(tmp_path / 'data', users_test=1))
    from bidl_train.cli.common import load_config
    torch.manual_seed(0)
    model = MODELS.build(load_config(str(cfg)).model)
    ckpt = save_checkpoint(model, tmp_path / 'ck.pth')
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    monkeypatch.chdir(run_dir)
    return cfg, ckpt


def test_cli_report_names_checkpoint_sha256(cli_setup, capsys):
    from bidl_train.cli.deploy import main
    cfg, ckpt = cli_setup
    assert main([osp.relpath(cfg), osp.relpath(ckpt), '--target',
                 'torchscript', '--out', 'out', '--verify', '1']) == 0
    report = json.load(open('out/report.json'))
    assert report['source']['checkpoint'] == dict(
        path=ckpt, sha256=sha256(ckpt), size_bytes=os.path.getsize(ckpt))
    assert report['source']['config'] == str(cfg)
    assert f'checkpoint: {ckpt} (sha256 {sha256(ckpt)}' in \
        capsys.readouterr().out


def test_cli_refuses_a_checkpoint_that_changes_while_read(cli_setup,
                                                          monkeypatch,
                                                          capsys):
    """The hash must be of the weights loaded: a file rewritten between
    hashing and loading (a training run saving it) is refused."""
    from bidl_train.cli import deploy as cli
    from bidl_train.engine import checkpoint
    cfg, ckpt = cli_setup
    load = checkpoint.load_model_weights  # bidl-deploy's weight loader

    def load_while_rewritten(model, path):
        load(model, path)
        with open(path, 'ab') as f:
            f.write(b'more')
    monkeypatch.setattr(checkpoint, 'load_model_weights',
                        load_while_rewritten)
    with pytest.raises(SystemExit) as err:
        cli.main([str(cfg), ckpt, '--target', 'torchscript', '--out', 'out',
                  '--verify', '1'])
    assert err.value.code == 2
    assert 'changed while bidl-deploy read it' in capsys.readouterr().err
    assert not osp.exists('out')


def _runner(work_dir, epoch=3, iteration=12):
    return SimpleNamespace(work_dir=str(work_dir), epoch=epoch,
                           iter=iteration,
                           cfg=SimpleNamespace(filename='/cfg/x.py'))


def test_deploy_hook_names_the_last_checkpoint_only_if_it_holds_the_weights(
        tmp_path):
    model = tiny_model(1)
    ckpt = save_checkpoint(model, tmp_path / 'epoch_3.pth')
    (tmp_path / 'last_checkpoint').write_text(ckpt)
    source = weights_source(_runner(tmp_path), model)
    assert source['weights'] == 'checkpoint'
    assert source['checkpoint']['sha256'] == sha256(ckpt)
    assert source['config'] == '/cfg/x.py'
    # weights changed after the last save: the report must not claim it
    with torch.no_grad():
        next(model.parameters()).add_(1e-3)
    source = weights_source(_runner(tmp_path), model)
    assert source['checkpoint'] is None
    assert source['note'].startswith(
        'in-memory weights at the end of training (epoch 3, iteration 12)')
    # nothing saved at all
    source = weights_source(_runner(tmp_path / 'empty'), model)
    assert source['weights'] == 'in-memory'


@pytest.mark.slow
def test_training_time_deploy_names_the_saved_checkpoint(tmp_path):
    """``deploy=dict(...)`` in a config: the report after training names
    the last checkpoint of the run (epoch_1.pth) with its sha256."""
    from helpers.commands import run_here, tiny_config, tool
    cfg = tiny_config(tmp_path)
    work = tmp_path / 'work'
    run_here([tool('train'), cfg, '--work-dir', str(work), '--seed', '1',
              '--cfg-options', 'deploy.targets=[torchscript]',
              'deploy.verify=1'], tmp_path)
    report = json.load(open(work / 'deploy' / 'torchscript' / 'report.json'))
    ckpt = str(work / 'epoch_1.pth')
    assert report['source']['checkpoint'] == dict(
        path=ckpt, sha256=sha256(ckpt), size_bytes=os.path.getsize(ckpt))
    assert report['source']['config'] == cfg
    assert 'epoch 1' in report['source']['note']
    only_entry(work / 'deploy', 'torchscript')
    np.testing.assert_array_equal(  # the artefact of those weights
        sorted(os.listdir(work / 'deploy' / 'torchscript')),
        sorted(report['files'].values()))
