"""Run-time faults: a second run on a busy work dir, a full or read-only
disk during a checkpoint save, a rank of a distributed run that dies or
freezes."""
import builtins
import errno
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
from mmengine.config import Config

from bidl_train.engine.checkpoint import _atomic_write
from bidl_train.engine.dist import dist_timeout
from bidl_train.engine.runner import DiskError, disk_errors
from bidl_train.engine.work_dir_lock import (LOCK_NAME, WorkDirInUse,
                                             lock_work_dir, unlock_work_dir)
from bidl_train.errors import CheckpointError, ConfigError

from helpers.commands import REPO, run, run_here, tiny_config, tool

ENV = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')


def _wait_for(predicate, proc, seconds, what):
    deadline = time.time() + seconds
    while not predicate():
        if proc.poll() is not None:
            # a piped stderr says why (a rank's one-line error, say)
            said = proc.stderr.read()[-3000:] if proc.stderr else ''
            raise AssertionError(f'process exited {proc.returncode} before '
                                 f'{what}\n{said}')
        if time.time() > deadline:
            raise AssertionError(f'no {what} after {seconds} s')
        time.sleep(0.05)


def _stop(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _one_line_error(returncode, stderr, *needles):
    """Exit 2 and a single 'bidl-train: error:' line holding ``needles``."""
    assert returncode == 2, (returncode, stderr[-3000:])
    assert 'Traceback' not in stderr, stderr[-3000:]
    errors = [ln for ln in stderr.splitlines()
              if ln.startswith('bidl-train: error:')]
    assert len(errors) == 1, stderr[-3000:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


# ---------------------------------------------------------------------------
# 1. one run per work dir
# ---------------------------------------------------------------------------
_HOLD = ('import sys, time\n'
         'from bidl_train.engine.work_dir_lock import lock_work_dir\n'
         'lock_work_dir(sys.argv[1])\n'
         'print("locked", flush=True)\n'
         'time.sleep(120)\n')


def _holder(work):
    """Another process holding ``work``'s lock (until killed)."""
    proc = subprocess.Popen([sys.executable, '-c', _HOLD, str(work)],
                            env=ENV, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == 'locked'
    return proc


def test_lock_names_the_holder_and_dies_with_it(tmp_path):
    work = tmp_path / 'work'
    holder = _holder(work)
    try:
        with pytest.raises(WorkDirInUse) as info:
            lock_work_dir(str(work))
        message = str(info.value)
        assert str(work) in message
        assert f'pid {holder.pid} on host {socket.gethostname()}' in message
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the dead holder's file stays, with its PID, and blocks nobody
    assert f'pid {holder.pid}' in (work / LOCK_NAME).read_text()
    lock_work_dir(str(work))
    try:
        assert (work / LOCK_NAME).read_text().startswith(f'pid {os.getpid()}')
        lock_work_dir(str(work))  # the holder may ask again
    finally:
        unlock_work_dir(str(work))


def _long_training(cfg, tmp_path, *args, env=ENV,
                   stderr=subprocess.DEVNULL, script=(tool('train'), )):
    """``bidl-train`` on ``cfg`` (a tiny config of 50 epochs: long enough
    to be interrupted) with work dir ``tmp_path/work``, started in the
    background; used by the busy-work-dir and the lost-rank tests.
    ``script``: the command line before the config."""
    return subprocess.Popen(
        [sys.executable, *script, cfg, '--work-dir',
         str(tmp_path / 'work'), *args], cwd=tmp_path, env=env,
        stdout=subprocess.DEVNULL, stderr=stderr, text=True)


@pytest.mark.slow
def test_second_training_run_on_a_busy_work_dir_is_refused(tmp_path):
    cfg = tiny_config(tmp_path, epochs=50)
    work = tmp_path / 'work'
    first = _long_training(cfg, tmp_path)
    try:
        lock = work / LOCK_NAME
        _wait_for(lambda: lock.is_file() and
                  lock.read_text().startswith(f'pid {first.pid} '),
                  first, 120, 'lock taken by the first run')
        # the second run needs no process of its own: the lock is held by
        # the first one's
        second = run_here([tool('train'), cfg, '--work-dir', str(work)],
                          tmp_path, check=False)
        _one_line_error(second.returncode, second.stderr,
                        f'work dir {work} is in use',
                        f'pid {first.pid} on host {socket.gethostname()}',
                        '--work-dir')
        assert first.poll() is None, 'the first run was disturbed'
    finally:
        _stop(first)


# ---------------------------------------------------------------------------
# 2. full or read-only disk while saving a checkpoint
# ---------------------------------------------------------------------------
def _save(path, value):
    torch.save({'state_dict': {'w': torch.tensor([value])}}, path)


def _failing_open(monkeypatch, fail_on, err_no, after_bytes=None):
    """``open`` refuses files whose name contains ``fail_on``: at once, or
    with ``after_bytes`` set, after writing that many bytes (a disk that
    fills up mid-file)."""
    real_open = builtins.open

    class FillingFile:
        def __init__(self, f):
            self._f = f

        def write(self, data):
            self._f.write(data[:after_bytes])
            raise OSError(err_no, os.strerror(err_no))

        def __getattr__(self, name):
            return getattr(self._f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()

    def fake_open(file, *args, **kwargs):
        if fail_on in os.fspath(file):
            if after_bytes is None:
                raise OSError(err_no, os.strerror(err_no), os.fspath(file))
            return FillingFile(real_open(file, *args, **kwargs))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, 'open', fake_open)


@pytest.mark.parametrize('err_no,after_bytes', [(errno.ENOSPC, 100),
                                                (errno.EROFS, None)])
def test_failed_checkpoint_write_leaves_the_old_state(tmp_path, monkeypatch,
                                                      err_no, after_bytes):
    _save(tmp_path / 'epoch_1.pth', 1.0)
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_1.pth'))
    target = tmp_path / 'epoch_2.pth'
    target.write_bytes(b'old')  # an older file of the same name stays whole
    _failing_open(monkeypatch, 'epoch_2.pth.tmp', err_no, after_bytes)
    with pytest.raises(CheckpointError) as info:
        _atomic_write(target, b'x' * 1000, 'wb')
    assert str(info.value) == (
        f'could not write checkpoint {target}: {os.strerror(err_no)}; the '
        f'last complete checkpoint is {tmp_path / "epoch_1.pth"}; free '
        'space or choose another --work-dir and --resume')
    assert target.read_bytes() == b'old'
    assert sorted(os.listdir(tmp_path)) == [
        'epoch_1.pth', 'epoch_2.pth', 'last_checkpoint']


def test_failed_first_checkpoint_says_nothing_is_left(tmp_path, monkeypatch):
    _failing_open(monkeypatch, '.tmp', errno.ENOSPC, after_bytes=10)
    with pytest.raises(CheckpointError,
                       match='no complete checkpoint is left in the work dir'):
        _atomic_write(tmp_path / 'epoch_1.pth', b'x' * 100, 'wb')
    assert os.listdir(tmp_path) == []


def test_full_disk_outside_checkpoints_is_one_line(tmp_path):
    _save(tmp_path / 'epoch_3.pth', 3.0)
    marker = tmp_path / 'last_checkpoint'
    with pytest.raises(DiskError) as info:
        with disk_errors(str(tmp_path)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC),
                          str(marker))
    assert str(info.value) == (
        f'could not write {marker}: No space left on device; the last '
        f'complete checkpoint is {tmp_path / "epoch_3.pth"}; free space or '
        'choose another --work-dir and --resume')
    with pytest.raises(DiskError, match='^could not write a file under '
                       'work dir .*: Read-only file system; no complete '
                       'checkpoint is left; free space or choose another '
                       '--work-dir$'):
        with disk_errors(str(tmp_path / 'empty')):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
    with pytest.raises(FileNotFoundError):  # other OS errors are no disk's
        with disk_errors(str(tmp_path)):
            open(tmp_path / 'missing')


@pytest.mark.slow
def test_full_disk_during_save_stops_cleanly_and_resumes(tmp_path,
                                                         monkeypatch):
    cfg = tiny_config(tmp_path, epochs=2)
    work = tmp_path / 'work'
    # the disk fills up after 100 bytes of epoch_2.pth (the run is in
    # this process, so the patched open is the one the save uses)
    with monkeypatch.context() as patch:
        _failing_open(patch, 'epoch_2.pth.tmp', errno.ENOSPC,
                      after_bytes=100)
        # max_keep_ckpts=1: mmengine's own hook deleted epoch_1.pth
        # before writing epoch_2.pth, so the failed save left nothing to
        # resume from
        proc = run_here([tool('train'), cfg, '--work-dir', str(work),
                         '--cfg-options',
                         'default_hooks.checkpoint.max_keep_ckpts=1'],
                        tmp_path, check=False)
    _one_line_error(
        proc.returncode, proc.stderr, f'could not write checkpoint {work / "epoch_2.pth"}: No space '
        'left on device; the last complete checkpoint is '
        f'{work / "epoch_1.pth"}; free space or choose another --work-dir '
        'and --resume')
    assert not (work / 'epoch_2.pth').exists()
    assert not [n for n in os.listdir(work) if '.tmp' in n]
    assert (work / 'last_checkpoint').read_text().strip() == str(
        work / 'epoch_1.pth')

    proc = run_here([tool('train'), cfg, '--work-dir', str(work),
                     '--resume'], tmp_path)
    assert 'resumed epoch: 1' in proc.stdout + proc.stderr
    assert (work / 'epoch_2.pth').is_file()


# ---------------------------------------------------------------------------
# 3. a rank of a distributed run dies or freezes
# ---------------------------------------------------------------------------
def test_dist_timeout_is_read_and_checked():
    assert dist_timeout(Config(dict())) == 1800
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl',
                                                  timeout=42))))
    assert dist_timeout(cfg) == 42
    for bad in (0, -5, '60', True):
        cfg.env_cfg.dist_cfg.timeout = bad
        with pytest.raises(ConfigError, match='env_cfg.dist_cfg.timeout'):
            dist_timeout(cfg)


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


#: one rank of a hand-started job: ``bidl-train``, its short timeout
#: applying from the end of epoch 1 on (not to a loaded machine's start-up)
RANK_DRIVER = os.path.join(REPO, 'tests', 'helpers', 'rank_driver.py')


def _start_two_ranks(tmp_path, timeout_s):
    """Two ranks started by hand (no torchrun to clean up after a death),
    training long enough to be interrupted. ``timeout_s`` (short) is the
    process group's from the end of epoch 1 on; a loaded machine can start
    two ranks many seconds apart, so the start-up gets minutes (see
    rank_driver)."""
    cfg = tiny_config(tmp_path, epochs=50)
    work = tmp_path / 'work'
    port = str(_free_port())
    ranks = []
    for rank in range(2):
        env = dict(ENV, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE='2',
                   MASTER_ADDR='127.0.0.1', MASTER_PORT=port)
        ranks.append(_long_training(
            cfg, tmp_path, '--launcher', 'pytorch', '--cfg-options',
            f'env_cfg.dist_cfg.timeout={timeout_s}', env=env,
            stderr=subprocess.PIPE,
            script=(RANK_DRIVER, str(tmp_path / 'ranks_up'))))
    # both ranks are inside the training loop once epoch 1 is saved
    _wait_for((work / 'epoch_1.pth').is_file, ranks[0], 180, 'epoch_1.pth')
    time.sleep(0.5)
    return ranks


@pytest.mark.slow
@pytest.mark.parametrize('sig,victim,how', [
    (signal.SIGKILL, 0, 'rank 0 closed its connection'),
    (signal.SIGSTOP, 1, 'rank 1 did not answer within 5 s'),
])
def test_survivor_of_a_lost_rank_stops_with_one_line(tmp_path, sig, victim,
                                                     how):
    ranks = _start_two_ranks(tmp_path, timeout_s=5)
    survivor = ranks[1 - victim]
    try:
        os.kill(ranks[victim].pid, sig)
        started = time.time()
        _, stderr = survivor.communicate(timeout=60)
        took = time.time() - started
    finally:
        for proc in ranks:
            _stop(proc)
    _one_line_error(survivor.returncode, stderr, f'rank {1 - victim} of 2: {how}',
                    'restart the whole job with --resume')
    # closed connections are noticed at once; silence after the timeout
    # (plus the time the survivor needs to reach its next collective)
    assert took < 40, took


@pytest.mark.slow
def test_rank_whose_peers_never_come_stops_after_the_timeout(tmp_path):
    cfg = tiny_config(tmp_path)
    port = str(_free_port())
    env = dict(ENV, RANK='0', LOCAL_RANK='0', WORLD_SIZE='2',
               MASTER_ADDR='127.0.0.1', MASTER_PORT=port)
    proc = run([tool('train'), cfg, '--launcher', 'pytorch', '--work-dir',
                str(tmp_path / 'work'), '--cfg-options',
                'env_cfg.dist_cfg.timeout=3'], tmp_path, check=False,
               env_extra=env)
    _one_line_error(proc.returncode, proc.stderr,
                    f'did not all meet at 127.0.0.1:{port}',
                    'did not answer within 3 s')


def test_max_keep_ckpts_deletes_the_oldest_after_each_save(tmp_path):
    cfg = tiny_config(tmp_path, epochs=3)
    work = tmp_path / 'work'
    run_here([tool('train'), cfg, '--work-dir', str(work), '--cfg-options',
              'default_hooks.checkpoint.max_keep_ckpts=2',
              'default_hooks.checkpoint.save_best=None'], tmp_path)
    assert sorted(n for n in os.listdir(work) if n.endswith('.pth')) == [
        'epoch_2.pth', 'epoch_3.pth']
