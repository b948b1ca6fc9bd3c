"""Write a spiking module once, run it in both execution forms.

A module with branches (residual blocks, attention) is awkward to express as
a :class:`~bidl_train.layers.SpikingSequential`. Here such a module writes
its maths once, in :meth:`StatefulModule.compute`, on a tensor whose leading
axis ``N`` folds time and batch together (``N = T*B`` in the multi-step form,
``N = B`` in the single-step form). Stateless operations (conv, BatchNorm,
linear, pooling, additions) act on ``[N, ...]`` directly; every neuron is
called through the context, ``ctx.fire(neuron, key, x)``:

* :class:`MultiStepContext` unfolds ``x`` to ``[T, B, ...]``, runs the
  neuron's multi-step form (its fused kernel where it has one) and folds the
  spikes back;
* :class:`SingleStepContext` runs ``neuron.step`` on ``[B, ...]`` with the
  state stored under ``key`` and records the new state.

The state of a module follows the one state protocol
(:mod:`bidl_train.utils.state`): each neuron's state sits at its context key
split at the dots (``{'layer1': {'0': {'lif1': {'v': ...}}}}``), so its
tensors are named ``layer1.0.lif1.v``. Child modules run in a scoped
context, ``child.compute(x, ctx.scope('name'))``, so keys never collide.

BatchNorm normalises over ``T*B`` samples in the multi-step form and over
``B`` in the single-step form; in eval mode (running statistics) the two
forms give the same numbers.
"""
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.layers import fold_time, per_step_batchnorm, unfold_time
from bidl_train.utils.state import (check_state_entries, flatten_state,
                                    put_state, state_at, unflatten_state)

__all__ = ['StatefulModule', 'MultiStepContext', 'SingleStepContext']


class MultiStepContext:
    """Neurons see the whole sequence: ``[T*B, ...] -> [T, B, ...]``."""

    def __init__(self, steps, prefix=''):
        self.steps = steps
        self.prefix = prefix

    def scope(self, name):
        return MultiStepContext(self.steps, f'{self.prefix}{name}.')

    def fire(self, neuron, key, x):
        return neuron(unfold_time(x, self.steps)).flatten(0, 1)


class SingleStepContext:
    """Neurons advance one step with explicit state.

    ``state`` is the module's nested state (``None``: every neuron fresh);
    a neuron's state is found at its full dotted key, and ``new_state``
    collects the states after this step there (shared by scopes).
    """

    def __init__(self, state=None, prefix='', new_state=None):
        if state is not None and not isinstance(state, dict):
            raise ConfigError('step(): state must be a dict (neuron key -> '
                              f'state) or None, got {type(state).__name__}')
        self.state = state
        self.prefix = prefix
        self.new_state = {} if new_state is None else new_state

    def scope(self, name):
        return SingleStepContext(self.state, f'{self.prefix}{name}.',
                                 self.new_state)

    def fire(self, neuron, key, x):
        full = self.prefix + key
        y, state = neuron.step(x, state_at(self.state, full))
        put_state(self.new_state, full, state)
        return y


class StatefulModule(nn.Module):
    """Base of branching spiking modules: implement :meth:`compute`.

    ``forward(x_seq)`` on ``[T, B, ...]`` and ``step(x_t, state)`` on
    ``[B, ...]`` both call ``compute``; they give the same numbers.
    """

    def compute(self, x, ctx):
        """The module's maths on ``[N, ...]``; neurons via ``ctx.fire``."""
        raise NotImplementedError(
            f'{type(self).__name__} must implement compute()')

    #: ``'per_step'``: in training, BatchNorm statistics per time step
    #: (BIDL's outer loop); see bidl_train.layers.time_fold
    norm_stats = 'all_steps'

    def forward(self, x_seq):
        x, steps = fold_time(x_seq, type(self).__name__)
        if self.training and self.norm_stats == 'per_step':
            with per_step_batchnorm(self, steps):
                return unfold_time(self.compute(x, MultiStepContext(steps)),
                                   steps)
        return unfold_time(self.compute(x, MultiStepContext(steps)), steps)

    def step(self, x_t, state=None):
        given = flatten_state(state) if state is not None else None
        # the state is what its dotted names say, however it is nested
        ctx = SingleStepContext(
            None if given is None else unflatten_state(given))
        y = self.compute(x_t, ctx)
        if given:  # every given state tensor must belong to a neuron here
            check_state_entries(type(self).__name__, given,
                                flatten_state(ctx.new_state),
                                'neuron state name')
        return y, ctx.new_state
