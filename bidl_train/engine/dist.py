"""Launcher set-up that also works with CPU-only torch.

mmengine's ``init_dist`` calls ``torch.cuda.set_device`` unconditionally and
its DDP wrapper passes ``device_ids=[LOCAL_RANK]``, both of which fail without
a GPU. On CPU we initialise a gloo process group ourselves (mmengine then sees
an initialised group and skips its own set-up) and ask for DDP with
``device_ids=None``. With GPUs everything is left to mmengine (nccl).

When a peer process dies (SIGKILL, out of memory), gloo notices the closed
connection within seconds; a peer that stops answering without closing it
(a frozen process, a lost node) is given up on after the process group's
timeout, ``env_cfg.dist_cfg.timeout`` seconds (default 1800, torch's own;
mmengine reads the same key for nccl). :func:`peer_failures` turns either
into a one-line error instead of gloo's traceback.
"""
import datetime
import gc
import os
import re
from contextlib import contextmanager

import torch
import torch.distributed as torch_dist

from bidl_train.errors import BidlError, ConfigError

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')

#: seconds a collective waits for a silent peer (torch's default)
DEFAULT_TIMEOUT_S = 1800


def _rank_and_world(launcher):
    """Read rank, local rank and world size from the launcher's environment."""
    env = os.environ
    if launcher == 'pytorch':
        keys = ('RANK', 'LOCAL_RANK', 'WORLD_SIZE')
    elif launcher == 'slurm':
        keys = ('SLURM_PROCID', 'SLURM_LOCALID', 'SLURM_NTASKS')
    else:  # mpi (Open MPI's variables)
        keys = ('OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_LOCAL_RANK',
                'OMPI_COMM_WORLD_SIZE')
    missing = [k for k in keys if k not in env]
    if missing:
        raise ConfigError(
            f'--launcher {launcher} needs the environment variables '
            f'{", ".join(missing)}; start the job with '
            + ('torchrun --nproc_per_node=N' if launcher == 'pytorch' else
               'srun' if launcher == 'slurm' else 'mpirun'))
    return tuple(int(env[k]) for k in keys)


def launcher_rank(launcher):
    """This process's global rank as the launcher announced it (0 without
    a launcher); readable before the process group exists."""
    if launcher == 'none':
        return 0
    return _rank_and_world(launcher)[0]


def dist_timeout(cfg):
    """``env_cfg.dist_cfg.timeout`` in seconds, checked, or the default."""
    dist_cfg = (cfg.get('env_cfg') or {}).get('dist_cfg') or {}
    timeout = dist_cfg.get('timeout', DEFAULT_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or timeout <= 0:
        raise ConfigError(
            f'env_cfg.dist_cfg.timeout must be a positive number of '
            f'seconds, got {timeout!r}')
    return timeout


def setup_cpu_distributed(launcher, timeout_s=DEFAULT_TIMEOUT_S):
    """Initialise gloo for ``launcher`` when CUDA is absent.

    Returns:
        dict or None: the ``model_wrapper_cfg`` to use (DDP without device
        ids), or None when nothing was done (no launcher, or GPUs present so
        mmengine's own nccl set-up applies).
    """
    if launcher not in LAUNCHERS:
        raise ConfigError(
            f'unknown launcher {launcher!r}; choose one of {LAUNCHERS}')
    if launcher == 'none' or torch.cuda.is_available():
        return None
    if not torch_dist.is_initialized():
        rank, local_rank, world_size = _rank_and_world(launcher)
        os.environ.setdefault('MASTER_ADDR', '127.0.0.1')
        os.environ.setdefault('MASTER_PORT', '29500')
        # mmengine reads these for its own rank bookkeeping
        os.environ['RANK'] = str(rank)
        os.environ['LOCAL_RANK'] = str(local_rank)
        os.environ['WORLD_SIZE'] = str(world_size)
        torch_dist.init_process_group(
            backend='gloo',
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(seconds=timeout_s))
    return dict(
        type='MMDistributedDataParallel',
        device_ids=None,
        broadcast_buffers=False)


def close_distributed():
    """Destroy the process group, if any, before the interpreter exits.

    Left to interpreter shutdown, gloo's communication threads were
    sometimes destroyed while still joinable, and a rank died with
    "terminate called without an active exception" (SIGABRT) after a
    finished run (about 1 run in 8 of the two-process test)."""
    if torch_dist.is_available() and torch_dist.is_initialized():
        # the DDP wrapper and its reducer keep the group alive: free them
        # first, or destroying it here only drops one reference
        gc.collect()
        torch_dist.destroy_process_group()


class PeerLost(BidlError):
    """Another process of a distributed run stopped or stopped answering."""


#: gloo's words for "the other side is gone"
_CLOSED = re.compile(r'Connection (closed|reset) by peer|Broken pipe', re.I)
#: gloo's and the rendezvous store's words for "no answer in time"
_SILENT = re.compile(r'Timed out|timeout', re.I)


@contextmanager
def peer_failures(timeout_s=DEFAULT_TIMEOUT_S):
    """Turn a lost peer's communication error into :class:`PeerLost`.

    Other errors pass unchanged.
    """
    try:
        yield
    except RuntimeError as err:
        lost = _describe_lost_peer(err, timeout_s)
        if lost is None:
            raise
        raise PeerLost(lost) from err


def _describe_lost_peer(err, timeout_s):
    """The one-line message for ``err``, or None if it is no peer failure."""
    text = str(err)
    # gloo raises plain RuntimeErrors naming its own source files; the
    # store and newer backends raise torch.distributed.DistError
    from_dist = isinstance(err, torch_dist.DistError) or 'gloo' in text
    if not from_dist:
        return None
    if _CLOSED.search(text):
        how = 'closed its connection'
    elif _SILENT.search(text):
        how = (f'did not answer within {timeout_s:g} s '
               '(env_cfg.dist_cfg.timeout)')
    else:
        return None
    if not torch_dist.is_initialized():
        return (f'the processes of the distributed job did not all meet '
                f'at {os.environ.get("MASTER_ADDR")}:'
                f'{os.environ.get("MASTER_PORT")}: a peer {how}. Start every '
                'rank with the same MASTER_ADDR, MASTER_PORT and WORLD_SIZE')
    rank, world = torch_dist.get_rank(), torch_dist.get_world_size()
    # gloo names the peer's address, not its rank; with two ranks the
    # peer can only be the other one
    who = f'rank {1 - rank}' if world == 2 else 'a peer process'
    return (f'rank {rank} of {world}: {who} {how}; this rank stops too. '
            'Read the other ranks\' logs for the cause, then restart the '
            'whole job with --resume')
