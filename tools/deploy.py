"""Thin wrapper: `python tools/deploy.py ...` is the same as `bidl-deploy ...`."""
from bidl_train.cli.deploy import main

if __name__ == '__main__':
    raise SystemExit(main())
