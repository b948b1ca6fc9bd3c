"""Build an mmengine Runner from a bidl-train config.

The one place where the framework's run-time patches are applied before the
Runner exists: safe checkpoint loading and CPU-capable distributed set-up.
"""
import difflib
import errno
import logging
import os
import os.path as osp
import re
import shutil
import tempfile
from collections import OrderedDict
from contextlib import contextmanager

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import LogProcessor, Runner

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
    _drop_disabled_default_hooks(cfg)
    _add_deploy_hook(cfg)
    colearning_to_loop(cfg)
    _seed_workers(cfg)
    install_safe_loader()
    install_atomic_backend()
    launcher = cfg.get('launcher', 'none')
    wrapper = setup_cpu_distributed(launcher, dist_timeout(cfg))
    if wrapper is not None and cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = wrapper
    return BidlRunner.from_cfg(cfg)


# ---------------------------------------------------------------------------
# The console: what a user reads, and what only the log file keeps
# ---------------------------------------------------------------------------
#: Start of mmengine's log messages that go to the log file only: the
#: environment and config dump (~270 lines), the hook order, a note about
#: SyncBN on one process, and deprecation notices about mmengine's own
#: internals (its hooks use FileClient) that no user can act on.
FILE_ONLY_PREFIXES = (
    '\n' + '-' * 60 + '\nSystem environment:',
    'Config:\n',
    'Hooks will be executed in the following order',
    'Distributed training is not used, all SyncBatchNorm',
    '"FileClient" will be deprecated in future',
    '"HardDiskBackend" is the alias of "LocalBackend"',
)


class ConsoleFilter(logging.Filter):
    """Keep the log-file-only records off a console handler.

    A record is file-only when it starts with one of
    :data:`FILE_ONLY_PREFIXES` or was logged with ``extra={'file_only':
    True}`` (see :func:`log_to_file`).
    """

    def filter(self, record):
        if getattr(record, 'file_only', False):
            return False
        message = record.msg if isinstance(record.msg, str) else ''
        return not message.startswith(FILE_ONLY_PREFIXES)


def quiet_console(logger):
    """Install :class:`ConsoleFilter` on ``logger``'s console handlers."""
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler):
            continue  # the log file keeps everything
        if not any(isinstance(f, ConsoleFilter) for f in handler.filters):
            handler.addFilter(ConsoleFilter())


def log_to_file(logger, message, level=logging.INFO):
    """Log ``message`` to ``logger``'s files but not to the console."""
    logger.log(level, message, extra={'file_only': True})


class ConsoleLogProcessor(LogProcessor):
    """mmengine's LogProcessor, with list-valued metrics off the console.

    The per-class accuracy and the confusion matrix (3,404 characters for
    Jester's 27 classes) would ride on every validation line. They go to
    the log file on a line of their own, and stay in the metrics mmengine
    hands to hooks (TensorBoard images, bidl-test's report files).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._hide_non_scalars = False

    def get_log_after_epoch(self, runner, batch_idx, mode,
                            with_non_scalar=False):
        details = super()._collect_non_scalars(runner, mode)
        self._hide_non_scalars = True
        try:
            tag, log_str = super().get_log_after_epoch(runner, batch_idx,
                                                       mode)
        finally:
            self._hide_non_scalars = False
        if details:
            head = log_str.split('  ', 1)[0]  # 'Epoch(val) [1][4/4]'
            log_to_file(runner.logger, f'{head}  ' + '  '.join(
                f'{name}: {value}' for name, value in details.items()))
        if with_non_scalar:
            tag.update(details)
        return tag, log_str

    def _collect_non_scalars(self, runner, mode):
        if self._hide_non_scalars:
            return OrderedDict()
        return super()._collect_non_scalars(runner, mode)


class BidlRunner(Runner):
    """mmengine's Runner with a readable console.

    * the environment/config dump and the hook order go to the log file
      only; the console gets one summary line naming that file;
    * validation and test lines carry scalar metrics only (see
      :class:`ConsoleLogProcessor`);
    * every data split says how many samples it holds when its loader is
      built, so a long scan of a dataset is never silent about its result.
    """

    def build_logger(self, *args, **kwargs):
        logger = super().build_logger(*args, **kwargs)
        quiet_console(logger)
        return logger

    def build_log_processor(self, log_processor):
        if isinstance(log_processor, dict) and log_processor.get(
                'type', 'LogProcessor') == 'LogProcessor':
            cfg = dict(log_processor)
            cfg.pop('type', None)
            return ConsoleLogProcessor(**cfg)
        return super().build_log_processor(log_processor)

    def _log_env(self, env_cfg):
        super()._log_env(env_cfg)  # file only (see FILE_ONLY_PREFIXES)
        import mmengine
        import torch
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
        log_file = osp.join(self.log_dir, f'{self.timestamp}.log')
        self.logger.info(
            f'torch {torch.__version__}, mmengine {mmengine.__version__}, '
            f'device {device}, seed {self.seed}, Distributed training: '
            f'{self.distributed} (world size {self.world_size}); the '
            f'environment and the full config are in {log_file}')

    @staticmethod
    def build_dataloader(dataloader, seed=None, diff_rank_seed=False):
        loader = Runner.build_dataloader(dataloader, seed=seed,
                                         diff_rank_seed=diff_rank_seed)
        message = describe_split(loader)
        if message:
            print_log(message, logger='current')
        return loader


def describe_split(loader):
    """One line: which dataset a loader reads, its size, its iterations.

    ``None`` when the dataset has no length (an iterable dataset).
    """
    dataset = loader.dataset
    try:
        size = len(dataset)
        iterations = len(loader)
    except TypeError:
        return None
    split = _dataset_attr(dataset, 'split')
    name = type(dataset).__name__
    where = _dataset_attr(dataset, 'data_root')
    where = f' under {where}' if where else ''
    label = f'{name} ({split})' if split else name
    plural = '' if iterations == 1 else 's'
    return (f'{label}: {size} samples{where}, {iterations} iteration{plural} '
            f'of batch size {loader.batch_size}')


def _dataset_attr(dataset, name):
    """A string attribute of ``dataset`` or of the dataset it wraps."""
    for source in (dataset, getattr(dataset, 'dataset', None),
                   getattr(dataset, 'reader', None)):
        value = getattr(source, name, None)
        if isinstance(value, str):
            return value
    return None


#: The default hooks mmengine adds itself; ``name=None`` removes one.
MMENGINE_DEFAULT_HOOKS = {'runtime_info', 'timer', 'sampler_seed', 'logger',
                          'param_scheduler', 'checkpoint'}


def _drop_disabled_default_hooks(cfg):
    """``default_hooks=dict(health=None)`` turns off a default hook of ours
    (mmengine accepts ``None`` only for the names it adds itself)."""
    hooks = cfg.get('default_hooks')
    if isinstance(hooks, dict):
        cfg.default_hooks = {
            name: hook for name, hook in hooks.items()
            if hook is not None or name in MMENGINE_DEFAULT_HOOKS}


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


# ---------------------------------------------------------------------------
# Failed runs leave no empty timestamp folder
# ---------------------------------------------------------------------------
#: mmengine names each run's folder ``<work_dir>/YYYYmmdd_HHMMSS``.
_RUN_DIR = re.compile(r'^\d{8}_\d{6}$')

#: A line of the log that records progress (an iteration or a result).
_PROGRESS = re.compile(r'(Epoch|Iter)\((train|val|test)\)')


@contextmanager
def discard_failed_run_dirs(work_dir):
    """On an error, remove the timestamp folders this run created that hold
    nothing but what every run writes at start-up.

    mmengine creates ``<work_dir>/<timestamp>/`` (log, config copy, an event
    file) before it builds the model or reads any data, so a typo in the
    config left one such folder per attempt. A folder whose log records an
    iteration, or that holds any other file (scalars, images), is kept.
    """
    before = set(_run_dirs(work_dir))
    try:
        yield
    except BaseException:
        empty = [osp.join(work_dir, name)
                 for name in set(_run_dirs(work_dir)) - before
                 if _recorded_nothing(osp.join(work_dir, name), name)]
        if empty:
            _close_writers_under(empty)  # a writer thread would recreate
        for path in empty:
            shutil.rmtree(path, ignore_errors=True)
        raise


def _close_writers_under(folders):
    """Close the visualizer backends (TensorBoard's event writer thread)
    that write under ``folders``, so they write nothing after removal."""
    from mmengine.visualization import Visualizer
    for visualizer in list(Visualizer._instance_dict.values()):
        for backend in getattr(visualizer, '_vis_backends', {}).values():
            save_dir = osp.abspath(getattr(backend, '_save_dir', '') or '')
            if any(save_dir.startswith(osp.abspath(f) + os.sep)
                   for f in folders):
                backend.close()
                # mmengine hands the same visualizer to a run of the same
                # name (same config, same second) in this process: let it
                # recreate its folder and writer on first use
                backend._env_initialized = False


def _run_dirs(work_dir):
    try:
        return [n for n in os.listdir(work_dir) if _RUN_DIR.match(n)
                and osp.isdir(osp.join(work_dir, n))]
    except OSError:
        return []


def _recorded_nothing(path, name):
    start_up = {f'{name}.log', osp.join('vis_data', 'config.py')}
    for root, _, files in os.walk(path):
        for file in files:
            rel = osp.relpath(osp.join(root, file), path)
            if rel in start_up or file.startswith('events.out.tfevents'):
                continue
            return False
    log = osp.join(path, f'{name}.log')
    if osp.isfile(log):
        with open(log, errors='replace') as f:
            if any(_PROGRESS.search(line) for line in f):
                return False
    return True
