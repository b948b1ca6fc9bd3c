"""Runner hooks; importing registers them in :data:`bidl_train.registry.HOOKS`.

Co-learning is not a hook: it is a training loop,
:class:`bidl_train.engine.loops.GlobalLocalLoop`.
"""
from . import training_health  # noqa: F401,E402 (registers TrainingHealthHook)
