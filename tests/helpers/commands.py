"""Running the command-line tools from tests: a tiny config inheriting the
demo, ``run`` (a subprocess, exactly as a user starts a tool) and
``run_here`` (the same script in this process, which saves a Python, torch
and mmengine start each)."""
import contextlib
import io
import os
import os.path as osp
import runpy
import subprocess
import sys
import traceback
import weakref

from helpers.paths import REPO
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
    on_console = _console_handlers_to({'stdout': out, 'stderr': err})
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
        for handler, stream in on_console:
            handler.setStream(stream)
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


def _console_handlers_to(streams):
    """Point the handlers that write to this process's console (a logger
    made outside ``run_here``, e.g. by a test building a Runner from the
    same config in the same second, which mmengine hands back by name) at
    ``streams`` for the run, as a new process's console would show their
    lines; returns ``(handler, old stream)`` pairs to restore after."""
    import logging

    from mmengine.logging import MMLogger
    console = {id(sys.stdout): 'stdout', id(sys.__stdout__): 'stdout',
               id(sys.stderr): 'stderr', id(sys.__stderr__): 'stderr'}
    loggers = [logging.getLogger()] + [
        logger for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)] + list(
            MMLogger._instance_dict.values())
    moved = []
    for logger in loggers:
        for handler in logger.handlers:
            stream = getattr(handler, 'stream', None)
            if stream is not None and id(stream) in console and not any(
                    handler is h for h, _ in moved):
                moved.append((handler, stream))
                handler.setStream(streams[console[id(stream)]])
    return moved


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
