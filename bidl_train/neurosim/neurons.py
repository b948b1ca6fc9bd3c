"""Point-neuron models for network simulation, in batched tensor form.

Every model keeps its state as a dict of tensors shaped ``[B, N]`` (B
independent trials, N neurons), advances it by one fixed step ``dt`` (ms)
with :meth:`step`, and returns the boolean spikes of that step. Inputs
arrive as a dict ``{compartment: current [B, N]}``; single-compartment
models read ``'soma'``. Units per model are stated in its docstring.

Models (the equations are in each class):

* :class:`LIF` -- leaky integrate-and-fire with refractory period, integrated
  exactly for piecewise-constant input.
* :class:`Izhikevich` -- the 2003 quadratic model with the published
  regimes (RS, IB, CH, FS, LTS, TC, RZ).
* :class:`AdEx` -- adaptive exponential integrate-and-fire (Brette &
  Gerstner 2005).
* :class:`HodgkinHuxley` -- the squid-axon model (1952), modern voltage
  convention (rest near -65 mV).
* :class:`TwoCompartment` -- a soma and a passive dendrite coupled by a
  conductance; the soma fires like an LIF.
"""
import math
from abc import ABC, abstractmethod

import torch

from bidl_train.errors import ConfigError
from bidl_train.neurons.izhikevich import (IZHIKEVICH_PRESETS,
                                           IZHIKEVICH_SHORT_NAMES,
                                           izhikevich_euler)


def _check_params(name, given, allowed):
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ConfigError(f'{name}: unknown parameter(s) {unknown}; allowed: '
                          f'{sorted(allowed)}')


class NeuronModel(ABC):
    """Base class: parameters as Python floats, state as tensors.

    A model whose ``v`` resets in the spike step may define ``spike_peak``:
    recorded ``v`` traces show that value on spike steps.
    """

    #: default parameters; subclasses override
    defaults = {}
    #: compartments that accept input current
    compartments = ('soma', )
    #: state variables that can be recorded
    variables = ('v', )

    def __init__(self, **params):
        _check_params(type(self).__name__, params, self.defaults)
        self.params = dict(self.defaults, **params)
        for key, value in self.params.items():
            setattr(self, key, None if value is None else float(value))

    def _input(self, inputs, compartment, like):
        current = inputs.get(compartment)
        return torch.zeros_like(like) if current is None else current

    @abstractmethod
    def init_state(self, batch, size, device, dtype=torch.float64):
        """State dict of ``[batch, size]`` tensors at rest."""

    @abstractmethod
    def step(self, state, inputs, dt):
        """``(new state, spikes bool [B, N])`` after one step of dt ms."""


class LIF(NeuronModel):
    """Leaky integrate-and-fire.

    ``tau_m dv/dt = -(v - v_rest) + R I``; when ``v >= v_th``: spike,
    ``v = v_reset`` and ``v`` is held there for ``t_ref`` ms. Integrated
    exactly for input constant over a step:
    ``v <- v_inf + (v - v_inf) exp(-dt / tau_m)``, ``v_inf = v_rest + R I``.
    Units: ms, mV; ``R I`` in mV (``R`` in MOhm with ``I`` in nA).
    For ``v_reset = v_rest`` and constant ``R I > theta = v_th - v_rest``
    the rate is ``1 / (t_ref + tau_m ln(R I / (R I - theta)))``.
    """

    defaults = dict(tau_m=10.0, v_rest=-65.0, v_reset=-65.0, v_th=-50.0,
                    R=1.0, t_ref=2.0, v_init=None)
    variables = ('v', )

    def __init__(self, **params):
        v_init = params.pop('v_init', None)
        super().__init__(**params)
        self.v_init = self.v_rest if v_init is None else float(v_init)

    def init_state(self, batch, size, device, dtype=torch.float64):
        v = torch.full((batch, size), self.v_init, device=device, dtype=dtype)
        return dict(v=v, ref=torch.zeros_like(v))

    def step(self, state, inputs, dt):
        v, ref = state['v'], state['ref']
        v_inf = self.v_rest + self.R * self._input(inputs, 'soma', v)
        v_new = v_inf + (v - v_inf) * math.exp(-dt / self.tau_m)
        refractory = ref > 0
        v_new = torch.where(refractory, torch.full_like(v, self.v_reset),
                            v_new)
        spikes = v_new >= self.v_th
        v_new = torch.where(spikes, torch.full_like(v, self.v_reset), v_new)
        # a spike starts t_ref of clamping; the count drops one step at a time
        ref = torch.where(spikes, torch.full_like(ref, self.t_ref),
                          (ref - dt).clamp(min=0))
        # steps still to clamp: remove float noise on multiples of dt
        ref = torch.where(ref < dt * 1e-6, torch.zeros_like(ref), ref)
        return dict(v=v_new, ref=ref), spikes


#: Izhikevich (2003) parameter sets ``(a, b, c, d)`` by the paper's abbreviation (RS, IB, CH, FS, LTS, TC, RZ):
#: the trainable neuron's table, :data:`~bidl_train.neurons.IZHIKEVICH_PRESETS`
IZHIKEVICH_REGIMES = {short: IZHIKEVICH_PRESETS[name]
                      for short, name in IZHIKEVICH_SHORT_NAMES.items()}


class Izhikevich(NeuronModel):
    """Izhikevich (2003) simple model.

    ``dv/dt = 0.04 v^2 + 5 v + 140 - u + I``, ``du/dt = a (b v - u)``;
    when ``v >= 30``: spike, ``v = c``, ``u = u + d``. ``v`` in mV, t in
    ms, ``I`` in the model's dimensionless current units. Forward Euler
    with ``dt`` (<= 0.5 ms; the paper's own code took two 0.5 ms steps).
    ``regime`` picks ``(a, b, c, d)`` from :data:`IZHIKEVICH_REGIMES`;
    explicit ``a``..``d`` override it. Each of ``regime``, ``a``..``d`` may
    also be a list with one entry per neuron (a mixed population, as in the
    paper's 1000-neuron network); ``regime`` may be a dict of counts,
    ``{'RS': 128, 'IB': 16}``, laid out in that order. Initial ``v = v_init`` (-65),
    ``u = b v``.
    """

    defaults = dict(a=None, b=None, c=None, d=None, regime='RS',
                    v_init=-65.0, v_peak=30.0)
    variables = ('v', 'u')

    def __init__(self, **params):
        _check_params('Izhikevich', params, self.defaults)
        regime = params.get('regime', 'RS')
        if isinstance(regime, dict):  # {'RS': 128, 'IB': 16}: counts
            regimes = [r for r, count in regime.items()
                       for _ in range(int(count))]
        else:
            regimes = [regime] if isinstance(regime, str) else list(regime)
        for r in regimes:
            if r not in IZHIKEVICH_REGIMES:
                raise ConfigError(f'Izhikevich: unknown regime {r!r}; '
                                  f'known: {sorted(IZHIKEVICH_REGIMES)}')
        table = [IZHIKEVICH_REGIMES[r] for r in regimes]
        self.abcd = {}
        for j, key in enumerate('abcd'):
            value = params.get(key)
            if value is None:
                value = [row[j] for row in table]
            elif not isinstance(value, (list, tuple)):
                value = [value]
            self.abcd[key] = [float(x) for x in value]
        self.regime = regime
        self.params = dict(self.abcd, regime=regime,
                           v_init=params.get('v_init', -65.0),
                           v_peak=params.get('v_peak', 30.0))
        self.v_init = float(self.params['v_init'])
        self.v_peak = float(self.params['v_peak'])

    @property
    def spike_peak(self):
        """Recorded ``v`` on a spike step (the reset has happened)."""
        return self.v_peak

    def _tensors(self, size, device, dtype):
        out = {}
        for key, values in self.abcd.items():
            if len(values) not in (1, size):
                raise ConfigError(
                    f'Izhikevich: {key} (or regime) has {len(values)} '
                    f'entries; give one or one per neuron ({size})')
            out[key] = torch.tensor(values, device=device, dtype=dtype)
        return out

    def init_state(self, batch, size, device, dtype=torch.float64):
        p = self._tensors(size, device, dtype)
        v = torch.full((batch, size), self.v_init, device=device, dtype=dtype)
        return dict(v=v, u=p['b'] * v, **{f'_{k}': t for k, t in p.items()})

    def step(self, state, inputs, dt):
        v, u = state['v'], state['u']
        a, b, c, d = state['_a'], state['_b'], state['_c'], state['_d']
        current = self._input(inputs, 'soma', v)
        v, u = izhikevich_euler(v, u, current, a, b, dt)
        spikes = v >= self.v_peak
        v = torch.where(spikes, c.expand_as(v), v)
        u = torch.where(spikes, u + d, u)
        return dict(state, v=v, u=u), spikes


class AdEx(NeuronModel):
    """Adaptive exponential integrate-and-fire (Brette & Gerstner 2005).

    ``C dV/dt = -g_L (V - E_L) + g_L Delta_T exp((V - V_T) / Delta_T)
    - w + I``; ``tau_w dw/dt = a (V - E_L) - w``; when ``V >= V_peak``:
    spike, ``V = V_reset``, ``w = w + b``. Units: pF, nS, mV, ms, pA
    (defaults: the paper's cortical pyramidal cell). Forward Euler; the
    exponential's argument is capped at its value at ``V_peak`` so a
    coarse step cannot overflow.
    """

    defaults = dict(C=281.0, g_L=30.0, E_L=-70.6, V_T=-50.4, Delta_T=2.0,
                    tau_w=144.0, a=4.0, b=80.5, V_reset=-70.6, V_peak=0.0)
    variables = ('v', 'w')

    @property
    def spike_peak(self):
        """Recorded ``v`` on a spike step (the reset has happened)."""
        return self.V_peak

    def init_state(self, batch, size, device, dtype=torch.float64):
        v = torch.full((batch, size), self.E_L, device=device, dtype=dtype)
        return dict(v=v, w=torch.zeros_like(v))

    def step(self, state, inputs, dt):
        v, w = state['v'], state['w']
        current = self._input(inputs, 'soma', v)
        arg = ((v - self.V_T) / self.Delta_T).clamp(
            max=(self.V_peak - self.V_T) / self.Delta_T)
        dv = (-self.g_L * (v - self.E_L) +
              self.g_L * self.Delta_T * torch.exp(arg) - w + current) / self.C
        dw = (self.a * (v - self.E_L) - w) / self.tau_w
        v = v + dt * dv
        w = w + dt * dw
        spikes = v >= self.V_peak
        v = torch.where(spikes, torch.full_like(v, self.V_reset), v)
        w = torch.where(spikes, w + self.b, w)
        return dict(v=v, w=w), spikes


def _vtrap(x, y):
    """``x / (exp(x / y) - 1)``; at ``x = 0`` (0/0) its limit ``y``.

    ``x`` is nudged by 1e-9 where exactly 0: the relative error of the
    result is then below 1e-9 / y.
    """
    x = x + (x == 0).to(x.dtype) * 1e-9
    return x / torch.expm1(x / y)


class HodgkinHuxley(NeuronModel):
    """Hodgkin-Huxley (1952) squid axon, rest near -65 mV.

    ``C dV/dt = I - g_Na m^3 h (V - E_Na) - g_K n^4 (V - E_K)
    - g_L (V - E_L)`` with ``dx/dt = alpha_x (1 - x) - beta_x x`` for
    ``x in {m, h, n}``::

        alpha_m = 0.1 (V + 40) / (1 - exp(-(V + 40) / 10))
        beta_m  = 4 exp(-(V + 65) / 18)
        alpha_h = 0.07 exp(-(V + 65) / 20)
        beta_h  = 1 / (1 + exp(-(V + 35) / 10))
        alpha_n = 0.01 (V + 55) / (1 - exp(-(V + 55) / 10))
        beta_n  = 0.125 exp(-(V + 65) / 80)

    Units: mV, ms, uF/cm^2, mS/cm^2, uA/cm^2. Gates use the exponential
    Euler step (exact for frozen V), V forward Euler; use ``dt <= 0.025``.
    A spike is an upward crossing of ``v_spike`` (0 mV).
    """

    defaults = dict(C=1.0, g_Na=120.0, g_K=36.0, g_L=0.3, E_Na=50.0,
                    E_K=-77.0, E_L=-54.387, v_init=-65.0, v_spike=0.0)
    variables = ('v', 'm', 'h', 'n')

    @staticmethod
    def rates(v):
        """``(alpha_m, beta_m, alpha_h, beta_h, alpha_n, beta_n)`` at v."""
        a_m = 0.1 * _vtrap(-(v + 40.0), 10.0)
        b_m = 4.0 * torch.exp(-(v + 65.0) / 18.0)
        a_h = 0.07 * torch.exp(-(v + 65.0) / 20.0)
        b_h = 1.0 / (1.0 + torch.exp(-(v + 35.0) / 10.0))
        a_n = 0.01 * _vtrap(-(v + 55.0), 10.0)
        b_n = 0.125 * torch.exp(-(v + 65.0) / 80.0)
        return a_m, b_m, a_h, b_h, a_n, b_n

    def init_state(self, batch, size, device, dtype=torch.float64):
        v = torch.full((batch, size), self.v_init, device=device, dtype=dtype)
        a_m, b_m, a_h, b_h, a_n, b_n = self.rates(v)
        return dict(v=v, m=a_m / (a_m + b_m), h=a_h / (a_h + b_h),
                    n=a_n / (a_n + b_n))

    def step(self, state, inputs, dt):
        v, m, h, n = state['v'], state['m'], state['h'], state['n']
        current = self._input(inputs, 'soma', v)
        i_ion = (self.g_Na * m**3 * h * (v - self.E_Na) + self.g_K * n**4 *
                 (v - self.E_K) + self.g_L * (v - self.E_L))
        v_new = v + dt * (current - i_ion) / self.C
        a_m, b_m, a_h, b_h, a_n, b_n = self.rates(v)
        gates = []
        for x, a, b in ((m, a_m, b_m), (h, a_h, b_h), (n, a_n, b_n)):
            tau = 1.0 / (a + b)
            x_inf = a * tau
            gates.append(x_inf + (x - x_inf) * torch.exp(-dt / tau))
        spikes = (v < self.v_spike) & (v_new >= self.v_spike)
        return dict(v=v_new, m=gates[0], h=gates[1], n=gates[2]), spikes


class TwoCompartment(NeuronModel):
    """Soma + passive dendrite coupled by a conductance.

    ``tau_s dv_s/dt = -(v_s - E_L) + g_c (v_d - v_s) + R_s I_soma``
    ``tau_d dv_d/dt = -(v_d - E_L) + g_c (v_s - v_d) + R_d I_dendrite``
    (``g_c`` relative to each compartment's leak). The soma fires when
    ``v_s >= v_th``: ``v_s = v_reset``, held ``t_ref`` ms; the dendrite is
    not reset (back-propagation is ignored). Steady state for a constant
    dendritic input (no spikes), with ``x = v - E_L``:
    ``x_d = R_d I (1 + g_c) / (1 + 2 g_c)``, ``x_s = g_c R_d I /
    (1 + 2 g_c)``. Units: ms, mV; ``R I`` in mV. Forward Euler.
    """

    defaults = dict(tau_s=10.0, tau_d=20.0, E_L=-65.0, g_c=0.5, R_s=1.0,
                    R_d=1.0, v_th=-50.0, v_reset=-65.0, t_ref=2.0)
    compartments = ('soma', 'dendrite')
    variables = ('v', 'v_d')

    def init_state(self, batch, size, device, dtype=torch.float64):
        v = torch.full((batch, size), self.E_L, device=device, dtype=dtype)
        return dict(v=v, v_d=v.clone(), ref=torch.zeros_like(v))

    def step(self, state, inputs, dt):
        v, v_d, ref = state['v'], state['v_d'], state['ref']
        i_s = self._input(inputs, 'soma', v)
        i_d = self._input(inputs, 'dendrite', v)
        dv = (-(v - self.E_L) + self.g_c * (v_d - v) + self.R_s * i_s)
        dvd = (-(v_d - self.E_L) + self.g_c * (v - v_d) + self.R_d * i_d)
        v_new = v + dt * dv / self.tau_s
        v_d = v_d + dt * dvd / self.tau_d
        v_new = torch.where(ref > 0, torch.full_like(v, self.v_reset), v_new)
        spikes = v_new >= self.v_th
        v_new = torch.where(spikes, torch.full_like(v, self.v_reset), v_new)
        ref = torch.where(spikes, torch.full_like(ref, self.t_ref),
                          (ref - dt).clamp(min=0))
        ref = torch.where(ref < dt * 1e-6, torch.zeros_like(ref), ref)
        return dict(v=v_new, v_d=v_d, ref=ref), spikes


#: model name in configs -> class
NEURON_MODELS = {
    'LIF': LIF,
    'Izhikevich': Izhikevich,
    'AdEx': AdEx,
    'HodgkinHuxley': HodgkinHuxley,
    'HH': HodgkinHuxley,
    'TwoCompartment': TwoCompartment,
}
