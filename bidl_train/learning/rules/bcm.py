"""BCM: Hebbian learning with a sliding modification threshold."""
import torch

from bidl_train.registry import LEARNING_RULES
from .base import LocalRule, check_number

__all__ = ['BCM']


@LEARNING_RULES.register_module()
class BCM(LocalRule):
    """Bienenstock-Cooper-Munro rule (Bienenstock et al., 1982)::

        ΔW_oi   = η ⟨ ȳ_o (ȳ_o − θ_o) x̄_i ⟩
        θ_o    ← θ_o + (⟨ȳ_o²⟩ − θ_o) / τ_θ

    A postsynaptic activity above the threshold θ potentiates active inputs,
    below it depresses them. θ slides towards the recent mean of ``ȳ²``, so
    a neuron that fires a lot raises its own bar (homeostasis). The weight
    change of a step uses θ from before the step; θ is updated after it.

    θ has one entry per output (``[O]``) when the local weight is shared by
    the batch, and ``[N, O]`` for per-sample fast weights. It is listed in
    ``persistent_keys``: a layer with a persistent local weight keeps it in a
    buffer, so it carries over from sample to sample and into checkpoints.

    Args:
        theta0 (float): initial threshold, ``>= 0``.
        tau_theta (float): time constant of the threshold in steps, ``>= 1``.
    """

    persistent_keys = ('theta', )

    def __init__(self, lr=0.01, pre_decay=0.0, post_decay=0.0, theta0=0.1,
                 tau_theta=20.0, w_min=None, w_max=None):
        super().__init__(lr, pre_decay, post_decay, w_min, w_max)
        self.theta0 = check_number('BCM', 'theta0', theta0, 0)
        self.tau_theta = check_number('BCM', 'tau_theta', tau_theta, 1)

    def persistent_init(self, out_features):
        return {'theta': torch.full((out_features, ), self.theta0)}

    def init_state(self, pre, post, shared):
        state = super().init_state(pre, post, shared)
        shape = post.shape[-1:] if shared else (post.shape[0],
                                                post.shape[-1])
        state['theta'] = torch.full(shape, self.theta0, dtype=post.dtype,
                                    device=post.device)
        return state

    def delta(self, pre, post, weight, state, teacher=None):
        pre_trace, post_trace = self.traces(pre, post, state)
        shared = weight.dim() == 2
        theta = state['theta']
        # theta [O] or [N, O] -> broadcast over [N, P, O]
        theta_b = theta if shared else theta.unsqueeze(1)
        phi = post_trace * (post_trace - theta_b)
        dw = self.lr * self.outer(phi, pre_trace, shared)
        square = post_trace * post_trace
        mean_sq = square.mean(dim=(0, 1)) if shared else square.mean(dim=1)
        theta = theta + (mean_sq - theta) / self.tau_theta
        return dw, {'pre_trace': pre_trace, 'post_trace': post_trace,
                    'theta': theta}

    def extra_repr(self):
        return (super().extra_repr() +
                f', theta0={self.theta0}, tau_theta={self.tau_theta}')
