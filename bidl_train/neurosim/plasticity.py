"""Pair-based STDP with exponential traces (Song, Miller & Abbott 2000).

Each synapse ``i -> j`` of a projection with ``plasticity=dict(type='STDP',
...)`` changes at every pre and post spike:

* traces decay: ``x_i <- x_i exp(-dt / tau_plus)``, ``y_j <- y_j
  exp(-dt / tau_minus)``; a pre spike adds 1 to ``x_i``, a post spike 1 to
  ``y_j`` (all-to-all pairing);
* post spike of ``j``: ``w_ij += A_plus * x_i`` (pre before post:
  potentiation, ``A_plus exp(-dt_pair / tau_plus)`` for one pair);
* pre spike of ``i``: ``w_ij -= A_minus * y_j`` (post before pre:
  depression, ``A_minus exp(-dt_pair / tau_minus)`` for one pair);
* weights stay in ``[w_min, w_max]`` and only on existing synapses.

The pre spike counts when it is emitted (axonal delays are not part of
the pairing). Across the trials of a batch the update is averaged: the
trials share one weight matrix.

This is the training stack's rule, :class:`bidl_train.learning.rules.STDP`
(additive, ``lr = 1``, ``a_plus = A_plus``, ``a_minus = A_minus``, trace
decays ``exp(-dt / tau)``), run on a projection's ``[pre, post]`` weight
with the parameters in physical units (ms) that a simulation config uses.
"""
import math

import torch

from bidl_train.errors import ConfigError
from bidl_train.learning.rules import STDP as TraceSTDP


class STDP:
    """Pair-based additive STDP (see module doc)."""

    defaults = dict(A_plus=0.01, A_minus=0.012, tau_plus=20.0,
                    tau_minus=20.0, w_min=0.0, w_max=1.0)

    def __init__(self, **params):
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ConfigError(f'STDP: unknown parameter(s) {unknown}; '
                              f'allowed: {sorted(self.defaults)}')
        p = dict(self.defaults, **params)
        for key, value in p.items():
            setattr(self, key, float(value))
        if self.w_min > self.w_max:
            raise ConfigError('STDP: w_min must be <= w_max')
        for key in ('tau_plus', 'tau_minus'):
            if not getattr(self, key) > 0:
                raise ConfigError(f'STDP: {key} must be > 0 ms')
        self._rules = {}  # one trace rule per step length dt

    def _rule(self, dt):
        if dt not in self._rules:
            self._rules[dt] = TraceSTDP(
                lr=1.0, a_plus=self.A_plus, a_minus=self.A_minus,
                pre_decay=math.exp(-dt / self.tau_plus),
                post_decay=math.exp(-dt / self.tau_minus))
        return self._rules[dt]

    def init_state(self, batch, n_pre, n_post, device):
        # the trace rule's layout: [trials, positions (1 here), neurons]
        return dict(
            pre_trace=torch.zeros(batch, 1, n_pre, dtype=torch.float64,
                                  device=device),
            post_trace=torch.zeros(batch, 1, n_post, dtype=torch.float64,
                                   device=device))

    def update(self, projection, state, pre_spikes, post_spikes, dt):
        """Apply one step of STDP to ``projection.weight`` in place."""
        pre = pre_spikes.to(torch.float64).unsqueeze(1)
        post = post_spikes.to(torch.float64).unsqueeze(1)
        # the rule's weight is [post, pre]; a projection's is [pre, post]
        dw, new_state = self._rule(dt).delta(pre, post,
                                             projection.weight.t(), state)
        state.update(new_state)
        w = (projection.weight + dw.t()).clamp(self.w_min, self.w_max)
        projection.weight = torch.where(projection.mask, w,
                                        torch.zeros_like(w))


PLASTICITY_RULES = {'STDP': STDP}
