"""Thin wrapper: `python tools/train.py ...` is the same as `bidl-train ...`."""
from bidl_train.cli.train import main

if __name__ == '__main__':
    raise SystemExit(main())
