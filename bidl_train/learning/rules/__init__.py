"""Local plasticity rules; importing registers them in ``LEARNING_RULES``."""
from .base import LocalRule, build_rule
from .bcm import BCM
from .hebbian import Hebbian, Oja
from .stdp import STDP, RewardSTDP

__all__ = ['LocalRule', 'build_rule', 'Hebbian', 'Oja', 'STDP', 'RewardSTDP', 'BCM']
