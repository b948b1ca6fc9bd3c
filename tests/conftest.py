"""Test-suite settings.

Under CI (``CI`` set) the hypothesis fuzz tests replay a fixed set of
examples, so a run is reproducible; locally they explore new ones each run.
"""
import os

from hypothesis import settings

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
