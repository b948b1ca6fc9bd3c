"""Runner hooks; importing registers them in :data:`bidl_train.registry.HOOKS`."""
from .colearning import ColearningHook, ForwardOnlyOptimWrapper

__all__ = ['ColearningHook', 'ForwardOnlyOptimWrapper']
