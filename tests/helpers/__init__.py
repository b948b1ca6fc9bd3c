"""Code shared by the tests: data writers in published layouts, the
command runners, deploy checks, fuzzing strategies. Not tests themselves;
``tests/conftest.py`` puts ``tests/`` on ``sys.path`` so a test imports
``from helpers.commands import run``."""
