"""End-to-end smoke tests of the command-line tools on tiny generated data.

The first training run and the distributed runs are subprocesses exactly
as a user starts them; the rest run the same tool scripts in this process
(``run_here``), which saves a Python, torch and mmengine start each.
"""

import json
import os
import os.path as osp
import socket

import pytest

from helpers.commands import DEMO, run, run_here, tiny_config, tool


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


def _free_port():
    """A port nobody listens on now: a fixed one collided when two test
    runs shared the machine (the second rendezvous failed)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.slow
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


def test_run_here_captures_a_logger_made_outside_it(tmp_path):
    """A logger a test made on the console (mmengine hands it back by name
    to a run of the same config in the same second) writes into
    ``run_here``'s capture during the run, and to the console again after."""
    import sys

    from mmengine.logging import MMLogger
    logger = MMLogger.get_instance('run_here_outside', log_level='INFO')
    console = [h for h in logger.handlers if getattr(h, 'stream', None)
               in (sys.stdout, sys.stderr)]
    assert console, 'mmengine made no console handler'
    before = [h.stream for h in console]
    script = tmp_path / 'log.py'
    script.write_text(
        'from mmengine.logging import MMLogger\n'
        "MMLogger.get_instance('run_here_outside').warning('hello there')\n")
    proc = run_here([str(script)], tmp_path)
    assert 'hello there' in proc.stdout + proc.stderr
    assert [h.stream for h in console] == before
