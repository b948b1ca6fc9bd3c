"""Building the C++ LIF kernel: a key that separates every build setting, a
process-safe lock, console messages while compiling, and the once-per-run
log line naming the kernel each layer runs. No test here compiles: the
compiler is replaced by fakes (tests/neurons/test_fused_kernel.py runs the real
kernel)."""
import logging
import multiprocessing
import os
import stat
import time

import pytest
import torch
from mmengine.logging import MMLogger

from bidl_train.neurons import LIF, lif_cpp
from bidl_train.neurons import functional

CFLAGS = lif_cpp._BASE_CFLAGS + lif_cpp._NATIVE_CFLAGS


def fake_tool(folder, name, version):
    """An executable ``name`` in ``folder`` printing ``version``."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    with open(path, 'w', encoding='utf-8') as script:
        script.write(f'#!/bin/sh\necho "{version}"\n')
    os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)
    return path


@pytest.fixture
def two_toolchains(tmp_path, monkeypatch):
    """Two PATHs with a compiler each and a different ninja each."""
    first, second = str(tmp_path / 'pip'), str(tmp_path / 'system')
    for folder, ninja in ((first, '1.11.1'), (second, '1.13.2')):
        fake_tool(folder, 'ninja', ninja)
        fake_tool(folder, 'c++', 'c++ 12.2.0')
    monkeypatch.delenv('CXX', raising=False)
    return first, second


def key_with_path(monkeypatch, path, source='src', cflags=CFLAGS):
    monkeypatch.setenv('PATH', path)
    return lif_cpp.build_key(source, cflags)


def test_build_key_changes_with_the_ninja_on_path(two_toolchains,
                                                   monkeypatch):
    first, second = two_toolchains
    key_a = key_with_path(monkeypatch, first)
    name_a = lif_cpp.build_name('k', 'src', CFLAGS)
    key_b = key_with_path(monkeypatch, second)
    assert 'ninja: ' + os.path.join(first, 'ninja') in key_a
    assert '1.11.1' in key_a and '1.13.2' in key_b
    assert key_a != key_b
    assert name_a != lif_cpp.build_name('k', 'src', CFLAGS)
    # the same PATH again: the same key (a cache must not go stale)
    assert key_with_path(monkeypatch, first) == key_a


def test_build_key_same_version_other_path_differs(tmp_path, monkeypatch):
    """Two installs of the same ninja version still get separate folders:
    each ninja's log in a folder is its own."""
    for folder in ('a', 'b'):
        fake_tool(str(tmp_path / folder), 'ninja', '1.11.1')
        fake_tool(str(tmp_path / folder), 'c++', 'c++ 12')
    assert key_with_path(monkeypatch, str(tmp_path / 'a')) != \
        key_with_path(monkeypatch, str(tmp_path / 'b'))


def test_build_key_covers_compiler_flags_torch_abi_and_cpu(two_toolchains,
                                                           monkeypatch):
    first, _ = two_toolchains
    base = key_with_path(monkeypatch, first)
    lines = dict(line.split(': ', 1) for line in base.splitlines())
    assert set(lines) == {'source', 'cflags', 'ldflags', 'torch', 'python',
                          'prefix', 'compiler', 'ninja', 'cpu'}
    assert lines['torch'] == torch.__version__
    assert '-march=native' in lines['cflags']
    # a portable build does not depend on the CPU
    portable = lif_cpp.build_key('src', lif_cpp._BASE_CFLAGS)
    assert 'cpu' not in dict(line.split(': ', 1)
                             for line in portable.splitlines())
    assert key_with_path(monkeypatch, first, source='other') != base
    # another compiler named by CXX (as torch reads it)
    fake_tool(os.path.join(first, 'clang'), 'clang++', 'clang 17')
    monkeypatch.setenv('CXX', os.path.join(first, 'clang', 'clang++'))
    assert 'clang 17' in lif_cpp.build_key('src', CFLAGS)
    monkeypatch.delenv('CXX')
    monkeypatch.setattr(torch, '__version__', '9.9.9')
    assert lif_cpp.build_key('src', CFLAGS) != base
    monkeypatch.undo()
    monkeypatch.setenv('PATH', first)
    monkeypatch.delenv('CXX', raising=False)
    monkeypatch.setattr(lif_cpp, '_cpu_features', lambda: 'x86_64 avx512f')
    assert lif_cpp.build_key('src', CFLAGS) != base


def test_missing_tools_still_give_a_key(tmp_path, monkeypatch):
    key = key_with_path(monkeypatch, str(tmp_path / 'empty'))
    assert 'ninja: ninja: not found' in key
    assert 'compiler: c++: not found' in key


class Capture(logging.Handler):
    """Collects the messages of the logger it is attached to."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def captured():
    """Messages reaching a handler of mmengine's current logger (the one
    with the console handler every run has)."""
    logger = MMLogger.get_current_instance()
    handler = Capture()
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


def fake_load_inline(calls, build_seconds=0.0):
    """A stand-in for torch's ``load_inline`` that 'builds' by writing the
    library file after ``build_seconds``."""

    def load_inline(name, build_directory, **kwargs):
        calls.append((name, kwargs['extra_cflags']))
        time.sleep(build_seconds)
        path = lif_cpp._library_path(build_directory, name)
        with open(path, 'w', encoding='utf-8') as library:
            library.write('built')
        return f'module {name}'

    return load_inline


def test_compiling_is_announced_on_the_console_once(tmp_path, monkeypatch,
                                                    captured):
    import torch.utils.cpp_extension as cpp_extension
    monkeypatch.setenv('TORCH_EXTENSIONS_DIR', str(tmp_path))
    calls = []
    monkeypatch.setattr(cpp_extension, 'load_inline', fake_load_inline(calls))
    assert lif_cpp.build_kernel('kern', 'src').startswith('module kern_')
    assert any('compiling the fused LIF kernel' in m and 'about a minute' in m
               for m in captured)
    assert any('compiled the fused LIF kernel in' in m for m in captured)
    # the built library is found: loading it again is silent
    captured.clear()
    assert lif_cpp.build_kernel('kern', 'src').startswith('module kern_')
    assert not any('compil' in m for m in captured)
    assert len(calls) == 2 and '-march=native' in calls[0][1]


def test_native_build_failure_retries_portable(tmp_path, monkeypatch):
    import torch.utils.cpp_extension as cpp_extension
    monkeypatch.setenv('TORCH_EXTENSIONS_DIR', str(tmp_path))
    calls = []
    working = fake_load_inline(calls)

    def picky(name, build_directory, **kwargs):
        if '-march=native' in kwargs['extra_cflags']:
            calls.append((name, kwargs['extra_cflags']))
            raise RuntimeError('error: unknown target CPU native')
        return working(name, build_directory, **kwargs)

    monkeypatch.setattr(cpp_extension, 'load_inline', picky)
    assert lif_cpp.build_kernel('kern', 'src') is not None
    assert [('-march=native' in flags) for _, flags in calls] == [True,
                                                                  False]
    assert calls[0][0] != calls[1][0]  # separate folders


def test_stale_torch_lock_is_removed_under_our_lock(tmp_path, monkeypatch):
    """torch waits forever on a ``lock`` file a killed build left behind;
    under our OS lock nobody else is building, so it is removed."""
    import torch.utils.cpp_extension as cpp_extension
    monkeypatch.setenv('TORCH_EXTENSIONS_DIR', str(tmp_path))
    monkeypatch.setattr(cpp_extension, 'load_inline', fake_load_inline([]))
    name = lif_cpp.build_name('kern', 'src')
    folder = tmp_path / name
    folder.mkdir()
    (folder / 'lock').write_text('')
    assert lif_cpp.build_kernel('kern', 'src') is not None
    assert not (folder / 'lock').exists()


def _build_in_child(extensions_dir, log_path):
    """Child process: a fake build that records when it starts and ends."""
    import torch.utils.cpp_extension as cpp_extension
    os.environ['TORCH_EXTENSIONS_DIR'] = extensions_dir
    # forked children: no torch work here, only file locking and a fake

    def load_inline(name, build_directory, **kwargs):
        with open(log_path, 'a', encoding='utf-8') as log:
            log.write(f'start {os.getpid()}\n')
        # the first builder writes the library; the second must see it
        library = lif_cpp._library_path(build_directory, name)
        existed = os.path.exists(library)
        time.sleep(0.5)
        with open(library, 'w', encoding='utf-8') as out:
            out.write('built')
        with open(log_path, 'a', encoding='utf-8') as log:
            log.write(f'end {os.getpid()} {existed}\n')
        return 'module'

    cpp_extension.load_inline = load_inline
    lif_cpp.build_kernel('kern', 'src', flag_sets=(lif_cpp._BASE_CFLAGS, ))


def test_two_processes_build_one_after_the_other(tmp_path):
    log_path = str(tmp_path / 'log.txt')
    context = multiprocessing.get_context('fork')
    children = [context.Process(target=_build_in_child,
                                args=(str(tmp_path / 'ext'), log_path))
                for _ in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    events = open(log_path, encoding='utf-8').read().split()
    # start A, end A, start B, end B: never two builds at once
    kinds = [e for e in events if e in ('start', 'end')]
    assert kinds == ['start', 'end', 'start', 'end']
    lines = open(log_path, encoding='utf-8').read().splitlines()
    assert lines[1].endswith('False') and lines[3].endswith('True')


def test_lock_is_released_when_its_holder_dies(tmp_path):
    """An OS lock: a killed holder does not block the next build."""
    context = multiprocessing.get_context('fork')
    child = context.Process(target=_hold_lock_forever,
                            args=(str(tmp_path), ))
    child.start()
    deadline = time.monotonic() + 30
    while not (tmp_path / 'held').exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with pytest.raises(TimeoutError, match='stayed locked'):
        with lif_cpp.build_lock(str(tmp_path), timeout=0.2):
            pass
    child.kill()
    child.join(10)
    with lif_cpp.build_lock(str(tmp_path), timeout=5):
        pass


def _hold_lock_forever(folder):
    with lif_cpp.build_lock(folder):
        open(os.path.join(folder, 'held'), 'w').close()
        time.sleep(600)


def test_each_layer_logs_its_kernel_once(captured, monkeypatch):
    monkeypatch.setattr(functional, '_ANNOUNCED', set())
    x = torch.rand(4, 2, 3, 5, 5)
    fused = LIF(name='conv1.lif', kernel='torch')
    looped = LIF(name='conv2.lif', backend='loop')
    for _ in range(3):
        fused(x)
        looped(x)
    lines = [m for m in captured if ': runs the ' in m]
    assert lines == [
        "conv1.lif: runs the pure-PyTorch fused LIF kernel "
        "(kernel='torch')",
        "conv2.lif: runs the per-step loop (backend='loop')"]


def test_kernel_log_names_the_fallback_reason(captured, monkeypatch):
    monkeypatch.setattr(functional, '_ANNOUNCED', set())
    x = torch.rand(4, 2, 3).half()
    LIF(name='fc.lif')(x.float())
    LIF(name='half.lif')(x)
    lines = [m for m in captured if ': runs the ' in m]
    assert len(lines) == 2
    if lif_cpp.load_cpp_kernel() is not None:
        assert lines[0] == ("fc.lif: runs the compiled C++ fused LIF kernel "
                            "(kernel='auto', cpu float32 input)")
    assert lines[1] == ('half.lif: runs the pure-PyTorch fused LIF kernel '
                        '(the compiled kernel cannot run: dtype '
                        'torch.float16 is not float32/float64)')
