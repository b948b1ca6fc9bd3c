"""One training run per work dir.

Two runs writing the same ``epoch_N.pth``, ``last_checkpoint`` and
``max_keep_ckpts`` clean-up silently destroy each other's checkpoints. A run
therefore holds an exclusive ``fcntl.flock`` on ``<work_dir>/.bidl-train.lock``
for its whole life. The lock belongs to the open file descriptor, so the
operating system drops it when the process ends in any way (SIGKILL
included): a lock file left behind by a dead run never blocks the next one.
The file only carries the holder's PID and host for the error message.

The file is never deleted: unlinking it while another process waits to lock
it would let two runs hold locks on two different files of the same name.
"""
import fcntl
import os
import os.path as osp
import socket

from bidl_train.errors import BidlError

LOCK_NAME = '.bidl-train.lock'

#: descriptors of the locks this process holds, by work dir; kept open (and
#: the locks held) until the process exits
_held = {}


class WorkDirInUse(BidlError):
    """Another live process is training in the same work dir."""


def lock_work_dir(work_dir):
    """Take the work dir's lock for the rest of this process's life.

    Raises:
        WorkDirInUse: another process holds the lock; the message names it.
    """
    key = osp.realpath(work_dir)
    if key in _held:
        return  # this process already holds it (main() called twice)
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, LOCK_NAME)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise WorkDirInUse(
            f'work dir {work_dir} is in use by another training run '
            f'({holder}); wait for it to finish, stop it, or choose '
            'another --work-dir') from None
    except OSError as err:  # a file system without flock support
        os.close(fd)
        raise WorkDirInUse(
            f'cannot lock work dir {work_dir} ({err.strerror}); choose '
            'another --work-dir on a local file system') from None
    _write_holder(fd)
    _held[key] = fd


def _write_holder(fd):
    os.ftruncate(fd, 0)
    os.pwrite(fd, f'pid {os.getpid()} on host {socket.gethostname()}\n'
              .encode(), 0)


def _read_holder(fd):
    """The holder as it wrote itself, e.g. 'pid 123 on host node1'."""
    text = os.pread(fd, 200, 0).decode(errors='replace').strip()
    # empty when the holder has locked but not yet written its line
    return text or 'PID not yet written'


def unlock_work_dir(work_dir):
    """Release the lock early (tests; a process exit releases it anyway)."""
    fd = _held.pop(osp.realpath(work_dir), None)
    if fd is not None:
        os.close(fd)
