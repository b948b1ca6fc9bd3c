"""Runner hooks; importing registers them in :data:`bidl_train.registry.HOOKS`.

Co-learning is not a hook: it is a training loop,
:class:`bidl_train.engine.loops.GlobalLocalLoop`.
"""
