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
"""
import math

import torch

from bidl_train.errors import ConfigError


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

    def init_state(self, batch, n_pre, n_post, device):
        return dict(
            x=torch.zeros(batch, n_pre, dtype=torch.float64, device=device),
            y=torch.zeros(batch, n_post, dtype=torch.float64, device=device))

    def update(self, projection, state, pre_spikes, post_spikes, dt):
        """Apply one step of STDP to ``projection.weight`` in place."""
        pre = pre_spikes.to(torch.float64)
        post = post_spikes.to(torch.float64)
        state['x'] = state['x'] * math.exp(-dt / self.tau_plus) + pre
        state['y'] = state['y'] * math.exp(-dt / self.tau_minus) + post
        batch = pre.shape[0]
        # potentiation uses x including a simultaneous pre spike (dt = 0
        # counts as causal); depression uses y before this step's post spike
        ltp = state['x'].transpose(0, 1) @ post / batch
        ltd = pre.transpose(0, 1) @ (state['y'] - post) / batch
        w = projection.weight + self.A_plus * ltp - self.A_minus * ltd
        w = w.clamp(self.w_min, self.w_max)
        projection.weight = torch.where(projection.mask, w,
                                        torch.zeros_like(w))


PLASTICITY_RULES = {'STDP': STDP}
