"""Build an mmengine Runner from a bidl-train config.

The one place where the framework's run-time patches are applied before the
Runner exists: safe checkpoint loading and CPU-capable distributed set-up.
"""
import difflib
import errno
import os
import os.path as osp
import shutil
import tempfile
from contextlib import contextmanager

from mmengine.config import Config
from mmengine.runner import Runner

from bidl_train.datasets import seeding  # noqa: F401 (registers seed_worker)
from bidl_train.errors import BidlError, ConfigError

from .checkpoint import (find_resume_checkpoint, install_atomic_backend,
                         install_safe_loader)
from .dist import dist_timeout, setup_cpu_distributed
from .loops import colearning_to_loop

#: Top-level config keys the Runner or bidl-train reads. Any other key is a
#: typo until proven otherwise (mmengine ignores unknown keys silently).
KNOWN_TOP_LEVEL_KEYS = {
    'model', 'work_dir', 'train_dataloader', 'val_dataloader',
    'test_dataloader', 'train_cfg', 'val_cfg', 'test_cfg', 'auto_scale_lr',
    'optim_wrapper', 'param_scheduler', 'val_evaluator', 'test_evaluator',
    'default_hooks', 'custom_hooks', 'data_preprocessor', 'load_from',
    'resume', 'launcher', 'env_cfg', 'log_processor', 'log_level',
    'visualizer', 'default_scope', 'randomness', 'experiment_name', 'cfg',
    'model_wrapper_cfg', 'find_unused_parameters', 'sync_bn', 'compile',
    'strategy', 'vis_backends', 'colearning', 'deploy', 'dataset_type',
    'data_root', 'num_classes', 'num_steps', 'input_size', 'train_pipeline',
    'test_pipeline', 'val_pipeline', 'representation'
}


def check_top_level_keys(cfg):
    """Refuse misspelt top-level keys, naming the closest known key.

    Keys starting with an underscore are private helpers of a config and are
    allowed, as are all keys listed in ``KNOWN_TOP_LEVEL_KEYS``.
    """
    for key in cfg.keys():
        if key.startswith('_') or key in KNOWN_TOP_LEVEL_KEYS:
            continue
        close = difflib.get_close_matches(key, KNOWN_TOP_LEVEL_KEYS, n=1)
        hint = f'; did you mean {close[0]!r}?' if close else (
            '; prefix private helper variables with "_"')
        raise ConfigError(f'unknown top-level config key {key!r}{hint}')


def build_runner(cfg: Config) -> Runner:
    """Apply the framework's patches and build the Runner."""
    check_top_level_keys(cfg)
    _add_deploy_hook(cfg)
    colearning_to_loop(cfg)
    _seed_workers(cfg)
    install_safe_loader()
    install_atomic_backend()
    launcher = cfg.get('launcher', 'none')
    wrapper = setup_cpu_distributed(launcher, dist_timeout(cfg))
    if wrapper is not None and cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = wrapper
    return Runner.from_cfg(cfg)


def _add_deploy_hook(cfg):
    """``deploy=dict(targets=[...])`` in a config means: run DeployHook."""
    deploy = cfg.get('deploy')
    if not deploy:
        return
    if not isinstance(deploy, dict):
        raise ConfigError('deploy must be a dict, e.g. '
                          "deploy=dict(targets=['onnx'], verify=8)")
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(h.get('type') == 'DeployHook' for h in hooks):
        hooks.append(dict(type='DeployHook', **deploy))
    cfg.custom_hooks = hooks


def _seed_workers(cfg):
    """Every DataLoader seeds its workers with :func:`seed_worker` (per
    worker, rank and epoch) unless the config names its own function;
    mmengine's default gives a worker the same seed in every epoch."""
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if isinstance(loader, dict) and 'worker_init_fn' not in loader:
            loader['worker_init_fn'] = dict(type='bidl_train.seed_worker')


#: Below this much free space a run would fail at its first checkpoint.
MIN_FREE_BYTES = 256 * 2**20


def check_work_dir(work_dir, min_free=MIN_FREE_BYTES):
    """Refuse an unwritable or nearly full work dir before training starts."""
    try:
        os.makedirs(work_dir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=work_dir, prefix='.write_test'):
            pass
    except OSError as err:
        raise ConfigError(
            f'work dir {work_dir} is not writable ({err.strerror}); choose '
            'another with --work-dir') from None
    free = shutil.disk_usage(work_dir).free
    if free < min_free:
        raise ConfigError(
            f'only {free / 2**20:.0f} MiB free under work dir {work_dir}; '
            f'checkpoints need at least {min_free / 2**20:.0f} MiB: free '
            'space or choose another --work-dir')


class DiskError(BidlError):
    """The disk under the work dir filled up or turned read-only mid-run."""


#: errors that mean "the disk will not take more"; others stay bugs
_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


@contextmanager
def disk_errors(work_dir):
    """Turn a full or read-only disk during training into :class:`DiskError`.

    Checkpoints report their own failures (see ``_atomic_write``); this
    catches the other writers: ``last_checkpoint``, logs, scalars.
    """
    try:
        yield
    except OSError as err:
        if err.errno not in _DISK_ERRNOS:
            raise
        what = err.filename or f'a file under work dir {work_dir}'
        last = find_resume_checkpoint(work_dir)
        left = (f'the last complete checkpoint is {last}; free space or '
                'choose another --work-dir and --resume' if last else
                'no complete checkpoint is left; free space or choose '
                'another --work-dir')
        raise DiskError(f'could not write {what}: {err.strerror}; '
                        f'{left}') from None
