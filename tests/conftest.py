"""Test-suite settings.

Under CI (``CI`` set) the hypothesis fuzz tests replay a fixed set of
examples, so a run is reproducible; locally they explore new ones each run.
"""
import os

from hypothesis import settings

settings.register_profile('ci', derandomize=True, print_blob=True)
if os.environ.get('CI'):
    settings.load_profile('ci')
