"""Current-based LIF (CubaLIF): a leaky synaptic current drives a BIDL LIF.

Per step t, with input ``x_t``, stored synaptic current ``i_{t-1}`` and
potential ``v_{t-1}`` (both 0 at the start):

1. synapse        ``i_t = alpha_syn * i_{t-1} + x_t``
2. then the LIF of :mod:`bidl_train.neurons.lif` driven by ``i_t``:
   ``u = i_t + v_{t-1}``, ``s = H(u - theta)``, reset,
   ``v_t = alpha*r + beta``.

The synaptic current does not reset on a spike (current-based synapse), so it
is a linear filter of the input and the membrane part runs on the fused LIF
kernel.

Relation to NIR's ``CubaLIF`` node (``tau_syn I' = -I + w_in x`` for the
synapse, ``tau_mem v' = (v_leak - v) + r I`` for the membrane, a spike and a
reset to ``v_reset`` when ``v > v_threshold``). One forward-Euler step ``dt``
of it, synapse first,

    I_t = (1 - dt/tau_syn) I_{t-1} + dt/tau_syn w_in x_t
    v_t = (1 - dt/tau_mem) v_{t-1} + dt/tau_mem (v_leak + r I_t)

is this neuron (hard reset) exactly when ``alpha_syn = 1 - dt/tau_syn``,
``w_in = tau_syn/dt``, ``alpha = 1 - dt/tau_mem``, ``r = tau_mem/dt``,
``v_leak = beta tau_mem/dt``, ``v_threshold = theta``, ``v_reset = v0``
(then ``I_t = i_t`` and NIR's pre-reset ``v_t`` is ``u``);
:meth:`CubaLIF.nir_parameters` returns these values.
"""
import torch

from bidl_train.errors import ConfigError
from bidl_train.registry import MODELS
from .base import BaseNeuron
from .functional import lif_multistep
from .lif import LIF

__all__ = ['CubaLIF']


@MODELS.register_module()
class CubaLIF(LIF):
    """LIF driven by a leaky synaptic current.

    ``i_t = alpha_syn i_{t-1} + x_t`` (see the module docstring).

    Args:
        alpha_syn (float | Tensor): synaptic current decay per step, in
            ``[0, 1]``. Default 0.5.
        **kwargs: every :class:`LIF` argument; ``learnable`` may also name
            ``alpha_syn``.
    """

    state_names = ('i', 'v')

    def __init__(self, alpha_syn=0.5, **kwargs):
        super().__init__(**kwargs)
        self.add_neuron_param('alpha_syn', alpha_syn)
        if self.alpha_syn.min() < 0 or self.alpha_syn.max() > 1:
            raise ConfigError(f'{self._label}: alpha_syn (synaptic decay) '
                              'must lie in [0, 1]')

    def param_names(self):
        return super().param_names() + ('alpha_syn', )

    def init_state(self, x_t):
        """``i_{-1} = 0`` and ``v_{-1} = 0``."""
        return {'i': torch.zeros_like(x_t), 'v': torch.zeros_like(x_t)}

    def step(self, x_t, state=None):
        """One step; ``state = {'i': i_{t-1}, 'v': v_{t-1}}``."""
        if state is None:
            state = self.init_state(x_t)
        current = self.alpha_syn * state['i'] + x_t
        y, _, v = self.lif_step(current, state['v'], self.theta)
        return y, {'i': current, 'v': v}

    def nir_parameters(self, dt=1.0):
        """The NIR ``CubaLIF`` parameters of this neuron for a step ``dt``.

        A dict with ``tau_syn, tau_mem, r, v_leak, v_threshold, v_reset,
        w_in`` (tensors of the parameter shape) that makes NIR's
        forward-Euler dynamics equal to this neuron's (see the module
        docstring). Needs a hard reset and ``alpha, alpha_syn < 1``.
        """
        if self.reset != 'hard':
            raise ConfigError(f'{self._label}: NIR CubaLIF resets to '
                              'v_reset; a soft reset has no NIR equivalent')
        alpha = self.leak_factor().detach()
        alpha_syn = self.alpha_syn.detach()
        if (alpha >= 1).any() or (alpha_syn >= 1).any():
            raise ConfigError(f'{self._label}: alpha and alpha_syn must be '
                              '< 1 for finite NIR time constants')
        tau_mem = dt / (1.0 - alpha)
        tau_syn = dt / (1.0 - alpha_syn)
        return dict(tau_syn=tau_syn, tau_mem=tau_mem, r=tau_mem / dt,
                    v_leak=self.beta.detach() * tau_mem / dt,
                    v_threshold=self.theta.detach().clone(),
                    v_reset=self.v0.detach().clone(), w_in=tau_syn / dt)

    def synaptic_current(self, x_seq):
        """``i_t`` for every step of ``x_seq`` (the synapse alone)."""
        currents = []
        current = None
        for x_t in x_seq.unbind(0):
            current = x_t if current is None else \
                self.alpha_syn * current + x_t
            currents.append(current)
        return torch.stack(currents, 0)

    def forward(self, x_seq):
        self.check_sequence(x_seq)
        # the membrane BatchNorm (norm_state) runs in the loop here
        if not self.uses_fused() or self.norm is not None:
            return BaseNeuron.forward(self, x_seq)
        out_mode = 'spike' if self.mode == 'spike' else self.memb_mode
        y = lif_multistep(self.synaptic_current(x_seq), self.leak_factor(),
                          self.beta, self.theta, self.v0,
                          self.surrogate.derivative, self.reset,
                          self.detach_reset, out_mode, self.kernel)
        if self.act is not None:
            y = self.act(y)
        return y
