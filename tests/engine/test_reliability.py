"""Reliability: atomic checkpoints, resume after a kill, work-dir checks."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from bidl_train.cli.common import load_config
from bidl_train.cli.train import merge_args, parse_args
from bidl_train.engine.checkpoint import (AtomicLocalBackend,
                                          find_resume_checkpoint, safe_load)
from bidl_train.engine.hooks.epoch_seed import epoch_seed
from bidl_train.engine.runner import check_work_dir
from bidl_train.errors import ConfigError

from helpers.commands import REPO, run, tiny_config, tool


def _save(path, value):
    torch.save({'state_dict': {'w': torch.tensor([value])}}, path)


def test_torn_last_checkpoint_falls_back_to_newest_complete(tmp_path):
    _save(tmp_path / 'epoch_1.pth', 1.0)
    _save(tmp_path / 'epoch_2.pth', 2.0)
    # a kill while epoch_3 was written by a non-atomic writer
    (tmp_path / 'epoch_3.pth').write_bytes(
        (tmp_path / 'epoch_2.pth').read_bytes()[:100])
    (tmp_path / 'last_checkpoint').write_text('')
    assert find_resume_checkpoint(tmp_path) == str(tmp_path / 'epoch_2.pth')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_3.pth'))
    assert find_resume_checkpoint(tmp_path) == str(tmp_path / 'epoch_2.pth')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_1.pth'))
    assert find_resume_checkpoint(tmp_path) == str(tmp_path / 'epoch_1.pth')
    assert find_resume_checkpoint(tmp_path / 'empty') is None


def test_resume_auto_uses_the_resolved_checkpoint(tmp_path):
    _save(tmp_path / 'epoch_4.pth', 4.0)
    cfg_path = tiny_config(tmp_path)
    args = parse_args([cfg_path, '--work-dir', str(tmp_path), '--resume'])
    cfg = merge_args(load_config(cfg_path), args)
    assert cfg.resume is True
    assert cfg.load_from == str(tmp_path / 'epoch_4.pth')


def test_atomic_backend_replaces_whole_files(tmp_path):
    backend = AtomicLocalBackend()
    target = tmp_path / 'sub' / 'x.bin'
    backend.put(b'first', target)
    backend.put(b'second', target)
    assert target.read_bytes() == b'second'
    backend.put_text('text', tmp_path / 'y.txt')
    assert (tmp_path / 'y.txt').read_text() == 'text'
    assert sorted(os.listdir(tmp_path / 'sub')) == ['x.bin']  # no temp left


def test_epoch_seed_depends_on_seed_and_epoch_only():
    seeds = {epoch_seed(s, e) for s in range(4) for e in range(50)}
    assert len(seeds) == 200
    assert epoch_seed(3, 7) == epoch_seed(3, 7)


def test_unwritable_work_dir_is_refused_before_training(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('not a folder')
    with pytest.raises(ConfigError, match='not writable'):
        check_work_dir(str(blocker / 'work'))


def test_full_disk_is_refused_before_training(tmp_path):
    with pytest.raises(ConfigError, match='MiB free'):
        check_work_dir(str(tmp_path), min_free=2**62)


def _noisy_config(tmp_path):
    """The tiny config with neuron noise and dropout: RNG matters."""
    path = tiny_config(tmp_path, epochs=3)
    with open(path, 'a') as f:
        f.write('model = dict(backbone=dict(neuron=dict(type="LIF", '
                'noise=0.1), dropout=0.2), head=dict(dropout=0.2))\n')
    return path


def _weights(path):
    return safe_load(path)['state_dict']


@pytest.mark.slow
def test_sigkill_and_resume_reproduce_the_uninterrupted_run(tmp_path):
    cfg = _noisy_config(tmp_path)
    ref = tmp_path / 'ref'
    run([tool('train'), cfg, '--work-dir', str(ref), '--deterministic'],
        tmp_path)

    work = tmp_path / 'killed'
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    proc = subprocess.Popen(
        [sys.executable, tool('train'), cfg, '--work-dir', str(work),
         '--deterministic'],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (work / 'epoch_1.pth').exists() and time.time() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    time.sleep(0.3)  # somewhere inside epoch 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (work / 'epoch_3.pth').exists(), 'run finished before kill'

    run([tool('train'), cfg, '--work-dir', str(work), '--deterministic',
         '--resume'], tmp_path)
    expected, got = _weights(ref / 'epoch_3.pth'), _weights(
        work / 'epoch_3.pth')
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
