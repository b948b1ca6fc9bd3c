"""Run several ``bidl-train`` command lines in one process, for
tests/cli/test_fuzz_cli.py.

    python tests/helpers/fuzz_cli_driver.py SPEC.json RESULT.json

SPEC: a list of ``{"case", "argv", "cwd", "timeout"}``. RESULT: the same
list with ``"rc"`` (the exit status ``bidl-train`` would give), ``"stdout"``
and ``"stderr"`` (everything written to file descriptors 1 and 2 while the
case ran: Python's streams, C libraries, DataLoader worker processes),
``"seconds"`` and ``"timeout"``.

Each case calls ``bidl_train.cli.train.main(argv)``, what the installed
``bidl-train`` script calls, so torch and mmengine are imported once for
all the cases instead of once per case. Between cases the process is put
back as a new one would be: mmengine's named loggers and visualizers of the
earlier case are dropped and its work dir lock released (see
test_commands.run_here).
"""
import json
import os
import signal
import sys
import tempfile
import time
import traceback

# run as a script: its folder is tests/helpers; the helpers package is
# imported from tests/
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class CaseTimeout(BaseException):
    """Raised by SIGALRM when a case runs past its timeout."""


def _on_alarm(signum, frame):
    raise CaseTimeout()


def _read(fd_file):
    fd_file.seek(0)
    return fd_file.read().decode('utf-8', 'replace')


def run_case(argv, cwd, timeout):
    """``(rc, stdout, stderr, timed_out)`` of ``bidl-train argv``."""
    from bidl_train.cli.config_safety import restrict_registry_imports
    from bidl_train.cli.train import main
    from helpers.commands import _as_at_exit, _process_state
    before = _process_state()
    restrict_registry_imports(False)
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(out.fileno(), 1)
    os.dup2(err.fileno(), 2)
    old_cwd = os.getcwd()
    rc, timed_out = 0, False
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(timeout)
    try:
        os.chdir(cwd)
        rc = main(argv) or 0
    except SystemExit as stop:
        rc = stop.code if isinstance(stop.code, int) else (
            0 if stop.code is None else 1)
        if isinstance(stop.code, str):
            print(stop.code, file=sys.stderr)
    except CaseTimeout:
        timed_out, rc = True, None
    except BaseException:  # noqa: B902 (what Python would print)
        traceback.print_exc()
        rc = 1
    finally:
        signal.alarm(0)
        os.chdir(old_cwd)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
        _as_at_exit(before)
    return rc, _read(out), _read(err), timed_out


def main(spec_path, result_path):
    with open(spec_path) as f:
        spec = json.load(f)
    for item in spec:
        start = time.monotonic()
        item['rc'], item['stdout'], item['stderr'], item['timeout'] = \
            run_case(item['argv'], item['cwd'], item['timeout'])
        item['seconds'] = time.monotonic() - start
    with open(result_path, 'w') as f:
        json.dump(spec, f, indent=1)


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
