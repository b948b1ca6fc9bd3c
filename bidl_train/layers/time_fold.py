"""Run a stateless module over every time step at once.

A conv, BatchNorm, pooling, linear, flatten or dropout layer has no memory
between steps, so the ``T`` steps of ``[T, B, ...]`` fold into the batch:
``y = module(x.reshape(T*B, ...)).reshape(T, B, ...)`` runs one large call
instead of ``T`` small ones. BatchNorm therefore normalises over ``T*B``
samples in the multi-step form and over ``B`` in the single-step form; in
eval mode (running statistics) the two forms agree exactly.

Training-time BatchNorm statistics (``norm_stats``), on the layers here, on
:class:`~bidl_train.layers.SpikingSequential` and on the backbones that
take it:

* ``'all_steps'`` (default): the folded call above; a BatchNorm normalises
  over ``T*B`` samples and updates its running statistics once per batch
  (BIDL's inner-loop "it" form).
* ``'per_step'``: in training mode every such BatchNorm normalises each time
  step of its folded ``[T*B, ...]`` input over the batch alone, one call
  per step, and so updates its running statistics T times per batch
  (:func:`per_step_batchnorm`): BIDL's outer-loop "itout" form, which its
  published configs train with. Everything else (convs, neurons, their
  fused kernels and forward hooks) runs as in the folded form, so the
  numbers equal running the whole network one step at a time. Eval mode
  uses the running statistics either way (the same numbers).

A membrane BatchNorm inside a neuron (``norm_state``) already sees one step
at a time and is left alone.
"""
import contextlib
import functools

import torch
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.neurons import BaseNeuron, build_module
from bidl_train.registry import MODELS

__all__ = ['NORM_STATS', 'TimeFold', 'check_norm_stats', 'fold_time',
           'per_step_batchnorm', 'unfold_time']

NORM_STATS = ('all_steps', 'per_step')


def check_norm_stats(owner, value):
    """``value`` if it is one of :data:`NORM_STATS`, else a ConfigError."""
    if value not in NORM_STATS:
        raise ConfigError(f"{owner}: norm_stats must be 'all_steps' (one "
                          "BatchNorm call over T*B) or 'per_step' (BIDL's "
                          f"outer loop: each step over B), got {value!r}")
    return value


def _stateless_batchnorms(module):
    """The BatchNorms of ``module`` outside its neurons (a neuron's
    membrane BatchNorm sees one step at a time already)."""
    found, neurons = [], []
    for name, sub in module.named_modules():
        if any(name.startswith(prefix) for prefix in neurons):
            continue
        if isinstance(sub, BaseNeuron):
            neurons.append(name + '.')
        elif isinstance(sub, nn.modules.batchnorm._BatchNorm):
            found.append((name, sub))
    return found


def _per_step_forward(bn, steps, owner, x):
    if x.shape[0] % steps:
        raise ConfigError(
            f'{owner}: norm_stats=\'per_step\' needs the BatchNorm input to '
            f'fold {steps} time steps, got a batch of {x.shape[0]}')
    chunks = x.chunk(steps, 0)  # [T*B, ...] is time-major: one chunk a step
    return torch.cat([type(bn).forward(bn, chunk) for chunk in chunks], 0)


@contextlib.contextmanager
def per_step_batchnorm(module, steps, owner=None):
    """While active, every BatchNorm of ``module`` outside its neurons
    normalises each of the ``steps`` time steps of its folded input
    separately (one call, and one running-statistics update, per step).

    The BatchNorms stay plain ``nn.BatchNorm*d`` modules (state dict,
    deployment and copies are untouched): only their ``forward`` is
    redirected for the duration of the block.
    """
    owner = owner or type(module).__name__
    patched = []
    for name, bn in _stateless_batchnorms(module):
        patched.append((bn, bn.__dict__.get('forward')))
        bn.forward = functools.partial(_per_step_forward, bn, steps,
                                       f'{owner}.{name}' if name else owner)
    try:
        yield
    finally:
        for bn, previous in reversed(patched):
            if previous is None:
                del bn.forward
            else:
                bn.forward = previous


def fold_time(x_seq, owner):
    """``[T, B, ...] -> [T*B, ...]``; returns the folded tensor and ``T``."""
    if x_seq.dim() < 2:
        raise ConfigError(f'{owner}: expected a [T, B, ...] tensor (time '
                          f'first), got shape {tuple(x_seq.shape)}')
    return x_seq.flatten(0, 1), x_seq.shape[0]


def unfold_time(y, steps):
    """``[T*B, ...] -> [T, B, ...]``."""
    return y.unflatten(0, (steps, y.shape[0] // steps))


@MODELS.register_module()
class TimeFold(nn.Module):
    """Wrap a stateless ``module`` (an instance or a config dict).

    ``forward(x_seq)`` on ``[T, B, ...]``; ``step(x_t, state=None)`` applies
    the module to one ``[B, ...]`` step and returns ``(y_t, None)``.
    ``norm_stats``: see the module docstring.
    """

    def __init__(self, module, norm_stats='all_steps'):
        super().__init__()
        self.module = build_module(module, 'TimeFold', 'wrapped module')
        self.norm_stats = check_norm_stats('TimeFold', norm_stats)

    def forward(self, x_seq):
        owner = f'TimeFold({type(self.module).__name__})'
        x, steps = fold_time(x_seq, owner)
        if self.training and self.norm_stats == 'per_step':
            with per_step_batchnorm(self.module, steps, owner):
                return unfold_time(self.module(x), steps)
        return unfold_time(self.module(x), steps)

    def step(self, x_t, state=None):
        return self.module(x_t), None
