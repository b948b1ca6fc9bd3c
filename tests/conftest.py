"""Test-suite settings.

Under CI (``CI`` set) the hypothesis fuzz tests replay a fixed set of
examples, so a run is reproducible; locally they explore new ones each run.
"""
import os
import sys

from hypothesis import settings

# Shared test code lives in tests/helpers/ (``from helpers.commands import
# run``); test modules sit in folders mirroring the package, so put tests/
# itself on the path once here instead of in every module.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _one_thread_per_xdist_worker():
    """Under pytest-xdist (``-n N``: N worker processes, one per core)
    each worker, and the commands it starts, computes on one thread:
    torch's default of one thread per core in every worker would run N
    times as many threads as cores, each waiting on the others. A serial
    run keeps torch's default."""
    if not os.environ.get('PYTEST_XDIST_WORKER'):
        return
    for name in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
        os.environ[name] = '1'  # subprocesses; torch here reads it too
    import torch
    torch.set_num_threads(1)


_one_thread_per_xdist_worker()

settings.register_profile('ci', derandomize=True, print_blob=True)
if os.environ.get('CI'):
    settings.load_profile('ci')


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _registry_imports_unrestricted():
    """``load_config`` of a YAML file turns off dotted-path imports in
    mmengine's registries for the rest of the process (a command runs one
    config); a test process runs many, so each test starts unrestricted."""
    from bidl_train.cli.config_safety import restrict_registry_imports
    restrict_registry_imports(False)
    yield
    restrict_registry_imports(False)


# The recommended (torch.export-based) ONNX exporter takes seconds to tens
# of seconds per graph, the TorchScript-based one well under a second: the
# suite's many ONNX deploys use the latter (subprocesses inherit it), and
# tests/deploy/test_onnx_exporter.py and the deploy matrix's ONNX cells unset it
# to hold the default path.
os.environ.setdefault('BIDL_TRAIN_ONNX_EXPORTER', 'torchscript')


@pytest.fixture(autouse=True)
def _log_handlers_on_open_streams():
    """A logger made during an earlier test (mmengine keeps its loggers by
    name for the whole process) may hold a console handler on that test's
    captured, now closed, stream; writing to it prints '--- Logging error
    ---' into this test's output. A command runs once per process, so only
    the test process needs this: point such handlers at the current
    stream."""
    import logging
    import sys
    loggers = [logging.getLogger()] + [
        logger for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)]
    for logger in loggers:
        for handler in logger.handlers:
            stream = getattr(handler, 'stream', None)
            if (type(handler) is logging.StreamHandler and stream is not None
                    and getattr(stream, 'closed', False)):
                handler.setStream(sys.stderr)
    yield
