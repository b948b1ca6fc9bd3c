"""The protocol of local plasticity rules and the maths they share.

A rule sees one time step of a synapse layer: presynaptic activity
``pre`` of shape ``[N, P, I]`` and postsynaptic spikes ``post`` of shape
``[N, P, O]`` (``N`` samples, ``P`` positions that share the weight: 1 for a
fully connected layer, the output positions of a convolution; ``I`` inputs,
``O`` outputs). It returns the change of the local weight ``W`` it governs:

* ``W`` of shape ``[O, I]`` is *shared* by the batch (persistent, online
  learning): the change is averaged over the samples and positions;
* ``W`` of shape ``[N, O, I]`` is *per sample* (fast weights): the change is
  averaged over positions only.

Every rule keeps exponentially decaying traces of the activity (Morrison et
al., 2008), updated before the weight change of the step::

    x̄_t = λ_pre  * x̄_{t-1} + x_t        (presynaptic trace)
    ȳ_t = λ_post * ȳ_{t-1} + y_t        (postsynaptic trace)

With ``λ = 0`` a trace is the instantaneous activity. ``lr`` (η) scales every
update; it is a buffer, or a Parameter after :meth:`LocalRule.make_learnable`
(differentiable plasticity: the global loss trains it through the unrolled
dynamics). ``w_min``/``w_max`` bound the local weight (``None``: unbounded).

Rules are tensor maths only: no loops over synapses, no state on the module
between calls (the traces travel in the ``state`` dict the caller passes
back). State entries listed in ``persistent_keys`` are meant to outlive one
sample (e.g. BCM's sliding threshold): a layer with a persistent local weight
keeps them in buffers.
"""
import math

import torch
from torch import nn

from bidl_train.errors import ConfigError

__all__ = ['LocalRule', 'build_rule', 'check_number']


def check_number(owner, name, value, low=None, high=None, allow_none=False):
    """A finite real number inside ``[low, high]`` or a ConfigError."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        raise ConfigError(f'{owner}: {name} must be a finite number, got '
                          f'{value!r}')
    if (low is not None and value < low) or (high is not None
                                             and value > high):
        raise ConfigError(f'{owner}: {name} must lie in [{low}, {high}], '
                          f'got {value!r}')
    return float(value)


class LocalRule(nn.Module):
    """Base class: traces, batch reduction, bounds (see the module docstring).

    Args:
        lr (float): learning rate η.
        pre_decay (float): λ_pre in ``[0, 1]``.
        post_decay (float): λ_post in ``[0, 1]``.
        w_min, w_max (float | None): bounds of the local weight.
    """

    #: state entries that persist across samples (kept in layer buffers)
    persistent_keys = ()
    #: whether the rule needs a teaching signal (labels)
    needs_teacher = False

    def __init__(self, lr=0.01, pre_decay=0.0, post_decay=0.0, w_min=None,
                 w_max=None):
        super().__init__()
        owner = type(self).__name__
        self.register_buffer('lr', torch.tensor(check_number(owner, 'lr',
                                                             lr)))
        self.pre_decay = check_number(owner, 'pre_decay', pre_decay, 0, 1)
        self.post_decay = check_number(owner, 'post_decay', post_decay, 0, 1)
        self.w_min = check_number(owner, 'w_min', w_min, allow_none=True)
        self.w_max = check_number(owner, 'w_max', w_max, allow_none=True)
        if self.w_min is not None and self.w_max is not None \
                and not self.w_min < self.w_max:
            raise ConfigError(f'{owner}: w_min ({self.w_min}) must be below '
                              f'w_max ({self.w_max})')

    # ------------------------------------------------------------------
    def make_learnable(self, names=('lr', )):
        """Turn coefficient buffers (``'lr'``) into Parameters."""
        for name in names:
            if name not in self._buffers:
                raise ConfigError(f'{type(self).__name__}: no coefficient '
                                  f'{name!r} to make learnable')
            value = self._buffers.pop(name)
            setattr(self, name, nn.Parameter(value.detach().clone()))

    def init_state(self, pre, post, shared):
        """Zero traces for ``pre [N, P, I]`` / ``post [N, P, O]``.

        Subclasses add their own entries (``shared`` tells whether the
        local weight is shared by the batch).
        """
        return {'pre_trace': torch.zeros_like(pre),
                'post_trace': torch.zeros_like(post)}

    def persistent_init(self, out_features):
        """Initial values of ``persistent_keys`` for ``O`` outputs."""
        return {}

    def delta(self, pre, post, weight, state, teacher=None):
        """``(dW, new_state)`` for one step; ``dW`` shaped like ``weight``."""
        raise NotImplementedError(
            f'{type(self).__name__} must implement delta()')

    def bound(self, weight):
        """Clamp the local weight into ``[w_min, w_max]``."""
        if self.w_min is None and self.w_max is None:
            return weight
        return weight.clamp(self.w_min, self.w_max)

    # ------------------------------------------------------------------
    # helpers for subclasses
    # ------------------------------------------------------------------
    def traces(self, pre, post, state):
        """Advance both traces with this step's activity."""
        pre_trace = self.pre_decay * state['pre_trace'] + pre
        post_trace = self.post_decay * state['post_trace'] + post
        return pre_trace, post_trace

    @staticmethod
    def outer(post_factor, pre_factor, shared):
        """``Σ_p a[n,p,o] b[n,p,i]`` averaged over P (and N when shared)."""
        positions = post_factor.shape[1]
        if shared:
            batch = post_factor.shape[0]
            return torch.einsum('npo,npi->oi', post_factor,
                                pre_factor) / (batch * positions)
        return torch.einsum('npo,npi->noi', post_factor,
                            pre_factor) / positions

    @staticmethod
    def post_mean(values, shared):
        """``[N, P, O] -> [O]`` (shared) or ``[N, O]``: mean over P (and N),
        shaped to broadcast against the weight (``[O, 1]`` / ``[N, O, 1]``)."""
        if shared:
            return values.mean(dim=(0, 1)).unsqueeze(-1)
        return values.mean(dim=1).unsqueeze(-1)

    def extra_repr(self):
        return (f'pre_decay={self.pre_decay}, post_decay={self.post_decay}, '
                f'w_min={self.w_min}, w_max={self.w_max}')


def build_rule(spec, owner):
    """A :class:`LocalRule` from a config dict, a type name or an instance.

    ``owner`` names the layer in error messages.
    """
    from bidl_train.registry import LEARNING_RULES
    if isinstance(spec, LocalRule):
        return spec
    if isinstance(spec, str):
        spec = dict(type=spec)
    if not isinstance(spec, dict) or 'type' not in spec:
        raise ConfigError(f"{owner}: rule must be a dict such as dict(type="
                          f"'STDP', lr=0.01) or a LocalRule; got {spec!r}")
    cfg = dict(spec)
    kind = cfg.pop('type')
    cls = LEARNING_RULES.get(kind) if isinstance(kind, str) else kind
    if not (isinstance(cls, type) and issubclass(cls, LocalRule)):
        known = sorted(k for k, v in LEARNING_RULES.module_dict.items()
                       if isinstance(v, type) and issubclass(v, LocalRule))
        raise ConfigError(f'{owner}: unknown rule type {kind!r}; registered '
                          f'local rules: {known}')
    try:
        return cls(**cfg)
    except TypeError as err:
        raise ConfigError(f'{owner}: bad arguments for rule {kind!r}: '
                          f'{err}') from err
