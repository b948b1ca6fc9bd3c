"""Run-time machinery: runner construction, checkpoints, distributed set-up."""
from .checkpoint import install_safe_loader, safe_load
from .dist import setup_cpu_distributed
from .runner import build_runner, check_top_level_keys

__all__ = [
    'build_runner', 'check_top_level_keys', 'install_safe_loader',
    'safe_load', 'setup_cpu_distributed'
]
