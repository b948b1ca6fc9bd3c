"""Run many bidl-train/bidl-test/bidl-deploy command lines in one process.

Used by tests/cli/test_yaml_safety.py: starting Python, torch and mmengine once
per command line would make the suite slow, so this script calls each
command's ``main(argv)`` (exactly what the console scripts call) in turn.

    python tests/helpers/yaml_cli_driver.py SPEC.json RESULT.json

SPEC: a list of ``{"case", "cmd": "train"|"test"|"deploy", "argv"}``.
RESULT: the same list with ``"code"`` (the exit status) and ``"stderr"``.
"""
import contextlib
import io
import json
import sys


def _main_of(cmd):
    if cmd == 'train':
        from bidl_train.cli.train import main
    elif cmd == 'test':
        from bidl_train.cli.test import main
    else:
        from bidl_train.cli.deploy import main
    return main


def run_one(cmd, argv):
    """``(exit status, stderr text)`` of one command line."""
    err = io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err):
        try:
            code = _main_of(cmd)(argv) or 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        except Exception as exc:  # a traceback a user would see
            err.write(f'Traceback (uncaught): {type(exc).__name__}: {exc}\n')
            code = 1
    return code, err.getvalue()


def main(spec_path, result_path):
    with open(spec_path) as f:
        spec = json.load(f)
    for item in spec:
        item['code'], item['stderr'] = run_one(item['cmd'], item['argv'])
    with open(result_path, 'w') as f:
        json.dump(spec, f, indent=1)


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
