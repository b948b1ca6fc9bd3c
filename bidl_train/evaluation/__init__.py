"""Evaluation metrics and the complexity report (params, MACs, SynOps)."""
from .complexity import count_complexity, count_parameters
from .metrics import *  # noqa: F401,F403
