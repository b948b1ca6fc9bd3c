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

Names follow NIR's ``CubaLIF`` node (``tau_dot = -I + w_in S`` for the
synapse, ``tau_mem v_dot = (v_leak - v) + r I`` for the membrane, reset to
``v_reset`` above ``v_threshold``). Under a forward-Euler step ``dt`` the
correspondence is ``alpha_syn = 1 - dt/tau_syn``, ``alpha = 1 - dt/tau_mem``,
``theta = v_threshold``, ``v0 = v_reset``, ``beta = dt/tau_mem * v_leak``; the
input gains ``dt/tau_syn * w_in`` and ``dt/tau_mem * r`` fold into the
preceding synaptic weights (BIDL adds the input to the membrane unscaled).
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
        y, lif_state = super().step(current, {'v': state['v']})
        return y, {'i': current, 'v': lif_state['v']}

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
        if not self.uses_fused():
            return BaseNeuron.forward(self, x_seq)
        out_mode = 'spike' if self.mode == 'spike' else self.memb_mode
        y = lif_multistep(self.synaptic_current(x_seq), self.leak_factor(),
                          self.beta, self.theta, self.v0,
                          self.surrogate.derivative, self.reset,
                          self.detach_reset, out_mode, self.kernel)
        if self.act is not None:
            y = self.act(y)
        return y
