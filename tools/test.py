"""Thin wrapper: `python tools/test.py ...` is the same as `bidl-test ...`."""
from bidl_train.cli.test import main

if __name__ == '__main__':
    raise SystemExit(main())
