"""End-to-end smoke tests of the command-line tools on tiny generated data.

The first training run and the distributed runs are subprocesses exactly
as a user starts them; the rest run the same tool scripts in this process
(``run_here``), which saves a Python, torch and mmengine start each.
"""
import contextlib
import io
import json
import os
import os.path as osp
import runpy
import socket
import subprocess
import sys
import traceback
import weakref

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(REPO, 'configs', 'demo', 'synthetic_gesture.py')


def tiny_config(tmp_path, epochs=1):
    """A config inheriting the demo, shrunk to seconds of work."""
    data = tmp_path / 'data'
    text = f'''
_base_ = [{DEMO!r}]
_gen = dict(data_root={str(data)!r}, users_train=2, users_test=1,
            conditions=1)
train_dataloader = dict(batch_size=4, dataset=_gen)
val_dataloader = dict(batch_size=4, dataset=_gen)
test_dataloader = dict(batch_size=4, dataset=_gen)
model = dict(backbone=dict(channels=(4, 4, 4), fc=(16, )),
             head=dict(in_features=16))
train_cfg = dict(max_epochs={epochs})
default_hooks = dict(logger=dict(interval=1))
'''
    path = tmp_path / 'tiny.py'
    path.write_text(text)
    return str(path)


def run(args, cwd, check=True, env_extra=None):
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    env.update(env_extra or {})
    proc = subprocess.run(
        [sys.executable] + args,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(
            f'{args} exited {proc.returncode}\n{proc.stdout[-3000:]}\n'
            f'{proc.stderr[-3000:]}')
    return proc


def tool(name):
    return osp.join(REPO, 'tools', f'{name}.py')


#: the output streams of earlier ``run_here`` calls: a logger made during
#: one (mmengine keeps its loggers by name) may still write to them
_CAPTURED = weakref.WeakKeyDictionary()


def run_here(args, cwd, check=True, env_extra=None):
    """``run`` without starting Python: the script ``args[0]`` (a tool)
    runs as ``__main__`` in this process, as ``python script args`` runs
    it once the interpreter is up, in ``cwd`` with ``env_extra`` set.
    Returns the same ``returncode``/``stdout``/``stderr``: SystemExit's
    code, and for an uncaught exception exit 1 with the traceback Python
    prints. Importing torch and mmengine is most of a tiny run's time, so
    tests about what a command does and prints use this; tests about the
    process itself (signals, other processes, ranks, memory caps, what a
    fresh interpreter prints: warnings, C-level output) use ``run``."""
    from bidl_train.cli.config_safety import restrict_registry_imports
    out, err = io.StringIO(), io.StringIO()
    _repoint_loggers({'stdout': out, 'stderr': err})
    _CAPTURED[out], _CAPTURED[err] = 'stdout', 'stderr'
    saved_env = {key: os.environ.get(key) for key in env_extra or {}}
    saved_cwd, saved_argv = os.getcwd(), list(sys.argv)
    before = _process_state()
    restrict_registry_imports(False)  # as in a new process
    code = 0
    try:
        os.environ.update(env_extra or {})
        os.chdir(cwd)
        sys.argv = [str(a) for a in args]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_path(sys.argv[0], run_name='__main__')
            except SystemExit as stop:
                code = _exit_status(stop.code, err)
            except BaseException:  # noqa: B902 (what Python prints)
                traceback.print_exc(file=err)
                code = 1
    finally:
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        restrict_registry_imports(False)
        _as_at_exit(before)
    proc = subprocess.CompletedProcess(args, code, out.getvalue(),
                                       err.getvalue())
    if check and code != 0:
        raise AssertionError(f'{args} exited {code}\n{proc.stdout[-3000:]}'
                             f'\n{proc.stderr[-3000:]}')
    return proc


def _exit_status(code, err):
    """The exit status Python gives ``raise SystemExit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=err)
    return 1


def _repoint_loggers(streams):
    """Handlers still writing to an earlier ``run_here`` capture write to
    this one's (a new process would have made them on its own streams)."""
    import logging

    from mmengine.logging import MMLogger
    loggers = [logging.getLogger()] + [
        logger for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)] + list(
            MMLogger._instance_dict.values())  # not in logging's table
    earlier = list(_CAPTURED.items())
    for logger in loggers:
        for handler in logger.handlers:
            stream = getattr(handler, 'stream', None)
            for capture, kind in earlier:
                if stream is capture:
                    handler.setStream(streams[kind])


def _manager_classes():
    """mmengine's named global objects (loggers, message hubs,
    visualizers, default scopes), one instance table per class."""
    from mmengine.utils import ManagerMixin
    todo, found = [ManagerMixin], []
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def _process_state():
    """What a run may add that a process keeps until it exits: mmengine's
    named objects and the work dirs it locked."""
    from bidl_train.engine import work_dir_lock
    return dict(instances={cls: set(cls._instance_dict)
                           for cls in _manager_classes()},
                locks=set(work_dir_lock._held))


def _as_at_exit(before):
    """Undo what a run added (see ``_process_state``) as its process's exit
    would: a run started in the same second from the same config would
    otherwise get the earlier run's logger and visualizer by name, and a
    later run on the same work dir would find it locked by this process.
    The 'mmengine' logger of the import stays; log files are closed."""
    from bidl_train.engine import work_dir_lock
    for key in set(work_dir_lock._held) - before['locks']:
        work_dir_lock.unlock_work_dir(key)
    for cls in _manager_classes():
        old = before['instances'].get(cls, set())
        for name in set(cls._instance_dict) - old:
            if name == 'mmengine':
                continue
            # a logger stays the current one (its console stream is this
            # run's capture): popping it would make an older logger
            # current, maybe one on a test's closed capture stream
            instance = cls._instance_dict[name] if hasattr(
                cls, 'handlers') else cls._instance_dict.pop(name)
            for handler in list(getattr(instance, 'handlers', [])):
                if hasattr(handler, 'baseFilename'):
                    handler.close()
                    instance.removeHandler(handler)


def test_train_resume_test(tmp_path):
    # the deploy targets below: the optional [deploy] extra
    for module in ('onnx', 'onnxruntime', 'nir'):
        pytest.importorskip(module)
    cfg = tiny_config(tmp_path)
    work = tmp_path / 'work'
    # deploy= in the config runs DeployHook after training: the demo's
    # network lies in NIR's exact subset, so every target verifies
    run([
        tool('train'), cfg, '--work-dir',
        str(work), '--seed', '1', '--cfg-options',
        'deploy.targets=[torchscript,onnx,nir]', 'deploy.verify=2'
    ], tmp_path)
    assert (work / 'epoch_1.pth').is_file()
    for target in ('torchscript', 'onnx', 'nir'):
        report = json.loads(
            (work / 'deploy' / target / 'report.json').read_text())
        assert report['status'] == 'verified', target
    assert (work / 'last_checkpoint').read_text().strip().endswith(
        'epoch_1.pth')
    assert (work / 'tiny.py').is_file()  # dumped config
    events = [
        f for _, _, files in os.walk(work) for f in files
        if f.startswith('events.out.tfevents')
    ]
    assert events, 'no TensorBoard event file written'
    logs = [
        osp.join(d, f) for d, _, files in os.walk(work) for f in files
        if f.endswith('.log')
    ]
    assert logs and 'accuracy/top1' in open(logs[0]).read()

    # resume continues at epoch 2 with optimizer and scheduler state
    proc = run_here([
        tool('train'), cfg, '--work-dir',
        str(work), '--resume', '--cfg-options', 'train_cfg.max_epochs=2'
    ], tmp_path)
    assert 'resumed epoch: 1' in proc.stdout + proc.stderr
    assert (work / 'epoch_2.pth').is_file()

    out = tmp_path / 'metrics.json'
    proc = run_here([
        tool('test'), cfg,
        str(work / 'epoch_2.pth'), '--work-dir',
        str(work), '--out',
        str(out)
    ], tmp_path)
    assert 'confusion matrix' in proc.stdout
    metrics = json.loads(out.read_text())['metrics']
    assert 0 <= metrics['accuracy/top1'] <= 100
    assert len(metrics['confusion_matrix']) == 4
    # 1 test user x 1 condition x 4 classes = 4 samples, each counted once
    assert sum(map(sum, metrics['confusion_matrix'])) == 4
    assert len(metrics['per_class_accuracy']) == 4
    assert any(k.startswith('firing_rate/backbone') for k in metrics)

    proc = run_here([
        tool('deploy'), cfg,
        str(work / 'epoch_2.pth'), '--target', 'onnx', '--out',
        str(tmp_path / 'onnx'), '--verify', '2'
    ], tmp_path)
    assert (tmp_path / 'onnx' / 'report.json').is_file()


@pytest.mark.slow
def _free_port():
    """A port nobody listens on now: a fixed one collided when two test
    runs shared the machine (the second rendezvous failed)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_process_cpu_training_and_evaluation(tmp_path):
    cfg = tiny_config(tmp_path)
    # 3 classes: 3 test samples over 2 ranks, so the distributed sampler
    # pads one duplicate that the metrics must not count
    with open(cfg, 'a') as f:
        f.write("_gen3 = dict(_gen, num_classes=3)\n"
                "train_dataloader = dict(dataset=_gen3)\n"
                "val_dataloader = dict(dataset=_gen3)\n"
                "test_dataloader = dict(dataset=_gen3)\n"
                "model = dict(head=dict(num_classes=3))\n"
                "val_evaluator = [dict(type='Accuracy', topk=(1, 2)), "
                "dict(type='FiringRate')]\n"
                "test_evaluator = val_evaluator\n")
    work = tmp_path / 'ddp'
    torchrun = ['-m', 'torch.distributed.run', '--nproc_per_node=2',
                f'--master_port={_free_port()}']
    proc = run(torchrun + [
        tool('train'), cfg, '--launcher', 'pytorch', '--work-dir',
        str(work)
    ], tmp_path)
    # the config dump (model_wrapper_cfg) went to the log file (issue 20)
    text = proc.stdout + proc.stderr + ''.join(
        open(osp.join(d, f)).read() for d, _, files in os.walk(work)
        for f in files if f.endswith('.log'))
    assert 'Distributed training: True' in text
    assert 'device_ids=None' in text
    assert (work / 'epoch_1.pth').is_file()

    out = tmp_path / 'ddp_metrics.json'
    run(torchrun + [
        tool('test'), cfg,
        str(work / 'epoch_1.pth'), '--launcher', 'pytorch', '--work-dir',
        str(work), '--out',
        str(out)
    ], tmp_path)
    confusion = json.loads(out.read_text())['metrics']['confusion_matrix']
    assert sum(map(sum, confusion)) == 3  # each sample exactly once
    assert [sum(row) for row in confusion] == [1, 1, 1]


def _fails_cleanly(proc, *needles):
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert 'Traceback' not in proc.stderr, proc.stderr[-2000:]
    for needle in needles:
        assert needle in proc.stderr, proc.stderr[-2000:]


def test_unknown_type_suggests_close_names(tmp_path):
    cfg = tiny_config(tmp_path)
    proc = run_here([
        tool('train'), cfg, '--work-dir',
        str(tmp_path / 'w'), '--cfg-options', 'model.backbone.type=ConvLifNt'
    ], tmp_path, check=False)
    _fails_cleanly(proc, "'ConvLifNt'", 'ConvLifNet')


def test_misspelt_top_level_key_is_named(tmp_path):
    cfg = tiny_config(tmp_path)
    with open(cfg, 'a') as f:
        f.write('train_dataloder = dict()\n')
    proc = run_here([tool('train'), cfg, '--work-dir', str(tmp_path / 'w')],
               tmp_path, check=False)
    _fails_cleanly(proc, 'train_dataloder', 'train_dataloader')


def test_misspelt_override_path_is_named(tmp_path):
    cfg = tiny_config(tmp_path)
    proc = run_here([
        tool('train'), cfg, '--work-dir',
        str(tmp_path / 'w'), '--cfg-options', 'model.backbon.channels=[2,2]'
    ], tmp_path, check=False)
    _fails_cleanly(proc, 'model.backbon', 'model.backbone')


def test_wrong_constructor_argument_is_reported(tmp_path):
    cfg = tiny_config(tmp_path)
    proc = run_here([
        tool('train'), cfg, '--work-dir',
        str(tmp_path / 'w'), '--cfg-options', 'model.backbone.chanels=[2,2]'
    ], tmp_path, check=False)
    _fails_cleanly(proc, 'ConvLifNet', 'chanels')


def test_missing_data_root_explains_where_data_comes_from(tmp_path):
    cfg = tmp_path / 'real.py'
    cfg.write_text(f'''
_base_ = [{DEMO!r}]
_ds = dict(_delete_=True, type='DVS128Gesture',
           data_root={str(tmp_path / "nowhere")!r}, split='train')
train_dataloader = dict(dataset=_ds)
''')
    proc = run_here([tool('train'), str(cfg), '--work-dir', str(tmp_path / 'w')],
               tmp_path, check=False)
    _fails_cleanly(proc, 'nowhere')
    assert 'DVS128 Gesture' in proc.stderr or 'DvsGesture' in proc.stderr


def test_amp_on_cpu_is_refused(tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip('CUDA present: --amp is valid here')
    proc = run_here([tool('train'), tiny_config(tmp_path), '--amp'], tmp_path,
               check=False)
    _fails_cleanly(proc, '--amp needs a CUDA GPU')


def test_missing_checkpoint_for_test(tmp_path):
    proc = run_here([tool('test'), tiny_config(tmp_path), 'missing.pth'],
               tmp_path, check=False)
    _fails_cleanly(proc, 'missing.pth')


def test_nan_loss_stops_with_iteration_and_keeps_last_good_checkpoint(
        tmp_path):
    import re
    cfg = tiny_config(tmp_path)
    work = tmp_path / 'work'
    # an absurd learning rate drives the weights to inf and the loss to NaN
    proc = run_here([
        tool('train'), cfg, '--work-dir',
        str(work), '--cfg-options', 'train_cfg.max_epochs=4',
        'optim_wrapper.optimizer.type=SGD', 'optim_wrapper.optimizer.lr=1e38'
    ], tmp_path, check=False)
    _fails_cleanly(proc, 'iteration')
    epoch = int(re.search(r'at epoch (\d+)', proc.stderr).group(1))
    assert not (work / f'epoch_{epoch}.pth').exists()
    if epoch > 1:
        assert (work / 'last_checkpoint').read_text().strip().endswith(
            f'epoch_{epoch - 1}.pth')
        assert f'epoch_{epoch - 1}.pth' in proc.stderr
