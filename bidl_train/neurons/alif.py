"""Adaptive-threshold LIF (ALIF), after Bellec et al. 2018.

Source: G. Bellec, D. Salaj, A. Subramoney, R. Legenstein, W. Maass, "Long
short-term memory and learning-to-learn in networks of spiking neurons",
NeurIPS 2018 (the LSNN), Methods: the threshold of an adaptive neuron is
``A_j(t) = b_j^0 + beta_j b_j(t)`` with the adaptation variable
``b_j(t + dt) = rho_j b_j(t) + (1 - rho_j) z_j(t)``, ``rho_j = exp(-dt /
tau_a,j)``. Here the membrane follows BIDL's LIF (see
:mod:`bidl_train.neurons.lif`) and the threshold adapts as in the LSNN.

Per step t, with input ``x_t``, stored potential ``v_{t-1}`` and adaptation
``a_{t-1}`` (both 0 at the start):

1. integrate      ``u = x_t + v_{t-1}``   (then ``norm_state``/noise as LIF)
2. threshold      ``theta_t = theta + beta_a * a_{t-1}``  (``theta`` is the
   baseline threshold ``theta0``)
3. fire           ``s = H(u - theta_t)``  (strict ``>``; surrogate backward)
4. reset          hard ``r = s*v0 + (1-s)*u``  or  soft ``r = u - s*theta_t``
5. leak           ``v_t = alpha*r + beta``
6. adapt          ``a_t = rho*a_{t-1} + (1 - rho)*s``

so every spike raises the threshold by ``beta_a (1 - rho)``, and the raise
decays by ``rho`` per step (``rho = exp(-dt/tau_a)``). Output: ``s``, or in
analog mode ``act([u, u - theta_t, r, v_t][memb_mode])``. With
``beta_a = 0`` this is exactly :class:`~bidl_train.neurons.LIF`.
"""
import torch

from bidl_train.errors import ConfigError
from bidl_train.registry import MODELS
from .base import BaseNeuron
from .lif import LIF

__all__ = ['ALIF']


@MODELS.register_module()
class ALIF(LIF):
    """LIF whose threshold rises with every spike and relaxes back.

    Args:
        rho (float | Tensor): decay of the adaptation variable per step,
            in ``[0, 1]`` (``exp(-dt / tau_a)``). Default 0.9.
        beta_a (float | Tensor): threshold increase per unit of adaptation,
            ``>= 0``. Default 1.0.
        theta (float | Tensor): the baseline threshold ``theta0``, ``> 0``.
        **kwargs: every other :class:`LIF` argument (alpha, beta, v0, reset,
            detach_reset, surrogate, norm_state, noise, mode, memb_mode, act,
            feature_shape, param_shape, learnable, name). ``learnable`` may
            also name ``rho`` and ``beta_a``. The multi-step form always runs
            the step loop (``backend`` is accepted but the fused LIF kernel
            does not cover a moving threshold).
    """

    state_names = ('v', 'a')

    def __init__(self, rho=0.9, beta_a=1.0, **kwargs):
        kwargs.setdefault('backend', 'loop')
        if kwargs['backend'] == 'fused':
            raise ConfigError(
                f'{kwargs.get("name") or "ALIF"}: the fused LIF kernel has a '
                "fixed threshold; use backend='auto' or 'loop' for ALIF")
        super().__init__(**kwargs)
        self.add_neuron_param('rho', rho)
        self.add_neuron_param('beta_a', beta_a)
        if self.rho.min() < 0 or self.rho.max() > 1:
            raise ConfigError(f'{self._label}: rho (adaptation decay) must '
                              'lie in [0, 1]')
        if self.beta_a.min() < 0:
            raise ConfigError(f'{self._label}: beta_a (threshold adaptation '
                              'strength) must be >= 0')

    def param_names(self):
        return super().param_names() + ('rho', 'beta_a')

    def init_state(self, x_t):
        """``v_{-1} = 0`` and ``a_{-1} = 0``."""
        return {'v': torch.zeros_like(x_t), 'a': torch.zeros_like(x_t)}

    def uses_fused(self):
        return False

    def step(self, x_t, state=None):
        """One step; ``state = {'v': v_{t-1}, 'a': a_{t-1}}``."""
        if state is None:
            state = self.init_state(x_t)
        threshold = self.theta + self.beta_a * state['a']
        y, s, v = self.lif_step(x_t, state['v'], threshold)
        a = self.rho * state['a'] + (1.0 - self.rho) * s
        return y, {'v': v, 'a': a}

    def forward(self, x_seq):
        return BaseNeuron.forward(self, x_seq)
