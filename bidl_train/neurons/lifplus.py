"""LIFPlus: BIDL's LIF with six switchable biological features.

BIDL (Lynxi, 2023) extends its LIF by six independent switches, each a
well-known mechanism of point-neuron models (Gerstner et al., "Neuronal
Dynamics", 2014; Brette & Gerstner 2005 for the adaptation current;
Fourcaud-Trocme et al. 2003 for the exponential spike initiation).
This module keeps BIDL's switch names, parameter names (``epsilon, v_g,
tau_recip, v_0, epsilon_r, v_rr, q_r, epsilon_w, b, a, v_w, theta, v_theta,
delta_t, v_c, alpha, beta, v_leak``) and its order of operations, with the
membrane *accumulating* (``u = v_{t-1} + ...``) in every mode and fixed,
documented default values (BIDL draws missing ones at random).

Per step t, with input ``x_t`` and ``v = v_{t-1}`` (all state starts at 0):

1. **input accumulation** ``input_accum`` -> synaptic drive ``I``:

   * ``'CUB'`` (current-based): ``I = x_t``
   * ``'COBE'`` (exponential conductance):
     ``g_t = (1 - epsilon) g_{t-1} + x_t``; ``I = g_t``
   * ``'COBA'`` (alpha-function conductance):
     ``y_t = (1 - epsilon) y_{t-1} + x_t``;
     ``g_t = (1 - epsilon) g_{t-1} + e * epsilon * y_t``; ``I = g_t``

   **reversal voltage** ``rev_volt=True`` (COBE/COBA only):
   ``I = g_t (v_g - v)``.
2. **refractory period** ``refractory``:

   * ``'AR'`` (absolute): the drive is blocked while the counter runs:
     ``I = 0`` where ``cnt_{t-1} > 0``; ``cnt <- max(cnt_{t-1} - 1, 0)``;
     after a spike ``cnt_t = refractory_steps``, so the ``refractory_steps``
     steps after a spike receive no input.
   * ``'RR'`` (relative): a refractory conductance
     ``q_t = (1 - epsilon_r) q_{t-1}`` adds the current ``q_t (v_rr - v)``
     (towards the refractory reversal ``v_rr``); a spike adds ``q_r``.
3. **adaptation / sub-threshold current** ``adaptation`` (a current ``w``
   subtracted from the membrane; a spike adds ``b`` to ``w``):

   * ``'ADT'`` (spike-triggered adaptation): ``w_t = (1 - epsilon_w) w_{t-1}``
   * ``'SBT'`` (sub-threshold coupling, AdEx):
     ``w_t = (1 - epsilon_w) w_{t-1} + tau_recip * a * (v - v_w)``
4. **spike initiation** ``spike_init`` adds ``N(v)`` and sets the threshold:

   * ``None``: ``N = 0``, threshold ``theta``
   * ``'EXI'`` (exponential): ``N = tau_recip * delta_t * exp((v - theta) /
     delta_t)`` (``theta`` is the rheobase), threshold ``v_theta``
   * ``'QDI'`` (quadratic): ``N = tau_recip * (v - v_0) (v - v_c)``,
     threshold ``v_theta``
5. **membrane decay** ``decay`` adds ``L(v)`` before firing:

   * ``None`` (BIDL's LIF): ``L = 0``; the leak acts after the reset
   * ``'EXD'`` (exponential decay towards ``v_0``): ``L = tau_recip (v_0 - v)``
   * ``'LID'`` (linear decay): ``L = -v_leak``
6. integrate ``u = v + I + [q_t (v_rr - v)] - [w_t] + N + L``; fire
   ``s = H(u - threshold)`` (strict ``>``, surrogate backward); hard reset
   ``r = s v_0 + (1 - s) u``; then ``v_t = alpha r + beta`` (decay ``None``)
   or ``v_t = r`` (EXD, LID: the decay is already in ``L``).
7. spike effects: ``cnt_t = s * refractory_steps + (1 - s) cnt`` (AR),
   ``q_t += q_r s`` (RR), ``w_t += b s`` (ADT/SBT).

Output ``s``, or in analog mode ``act([u, u - threshold, r, v_t][memb_mode])``.
With every switch off (``'CUB'``, no reversal, ``None`` elsewhere) this is
BIDL's LIF with hard reset.

Differences from BIDL's code, deliberately: the membrane accumulates
``v_{t-1}`` in every mode; the RR switch uses only the refractory
conductance (the adaptation current is the ``adaptation`` switch's job) and
both the refractory conductance and the adaptation current grow on a spike
(BIDL subtracts ``q_r`` and ``b``, which with the documented reversal
voltages would excite after a spike); the exponential uses
``(v - theta)/delta_t`` as in Fourcaud-Trocme et al.
BIDL's integer switch codes (0, 1, 2) are accepted as well as the names.

The LIF parts are LIF's own pieces
(:class:`~bidl_train.neurons.lif.LIFEquations`): the charge ``u = I + v``
(the input the switches shaped), the fire, the hard reset to ``v_0``, the
leak and the output selection; only the switches' extra currents are
written here.
"""
import math

import torch

from bidl_train.errors import ConfigError
from bidl_train.registry import MODELS
from .base import BaseNeuron
from .build import build_module
from .lif import LIFEquations
from .surrogate import build_surrogate

__all__ = ['LIFPlus', 'LIFPLUS_DEFAULTS']

#: Default parameter values (deterministic; BIDL draws missing ones at random).
LIFPLUS_DEFAULTS = dict(
    epsilon=0.5, v_g=2.0, tau_recip=0.5, v_0=0.0, epsilon_r=0.5, v_rr=-1.0,
    q_r=0.5, epsilon_w=0.5, b=0.1, a=0.1, v_w=0.0, theta=0.5, v_theta=1.0,
    delta_t=0.1, v_c=0.5, alpha=0.3, beta=0.0, v_leak=0.05)

_SWITCHES = {
    'input_accum': ('CUB', 'COBE', 'COBA'),
    'refractory': (None, 'AR', 'RR'),
    'spike_init': (None, 'EXI', 'QDI'),
    'adaptation': (None, 'ADT', 'SBT'),
    'decay': (None, 'EXD', 'LID'),
}


def _parse_switch(owner, name, value):
    options = _SWITCHES[name]
    if isinstance(value, int) and not isinstance(value, bool) and \
            0 <= value < len(options):
        return options[value]
    if isinstance(value, str) and value.upper() in options:
        return value.upper()
    if value is None and None in options:
        return None
    raise ConfigError(f'{owner}: {name} must be one of {list(options)} (or '
                      f'BIDL code 0..{len(options) - 1}), got {value!r}')


@MODELS.register_module()
class LIFPlus(LIFEquations, BaseNeuron):
    """BIDL's LIF+ (see the module docstring for every equation).

    Args:
        input_accum (str | int): ``'CUB'``, ``'COBE'`` or ``'COBA'``.
        rev_volt (bool): reversal voltage on the conductance (COBE/COBA).
        refractory (str | int | None): ``None``, ``'AR'`` or ``'RR'``.
        spike_init (str | int | None): ``None``, ``'EXI'`` or ``'QDI'``.
        adaptation (str | int | None): ``None``, ``'ADT'`` or ``'SBT'``.
        decay (str | int | None): ``None``, ``'EXD'`` or ``'LID'``.
        refractory_steps (int): blocked steps after a spike (AR). Default
            10 (BIDL's ``cntmax``).
        surrogate: surrogate gradient (default ``'rectangle'``).
        mode (str): ``'spike'`` or ``'analog'``; ``memb_mode``, ``act`` as
            for :class:`~bidl_train.neurons.LIF`.
        feature_shape, param_shape, learnable, name: as for every neuron.
        **params: the neuron parameters used by the chosen switches (see
            :data:`LIFPLUS_DEFAULTS`); a parameter no switch uses is refused.
    """

    # what the LIF pieces read: BIDL's LIF+ always resets hard to v_0, with
    # the spike attached, and has no membrane norm
    reset = 'hard'
    detach_reset = False
    norm = None

    def __init__(self, input_accum='CUB', rev_volt=False, refractory=None,
                 spike_init=None, adaptation=None, decay=None,
                 refractory_steps=10, surrogate='rectangle', mode='spike',
                 memb_mode=0, act='ReLU', feature_shape=None,
                 param_shape='layer', learnable=(), name=None, **params):
        label = name or 'LIFPlus'
        switches = {key: _parse_switch(label, key, value) for key, value in (
            ('input_accum', input_accum), ('refractory', refractory),
            ('spike_init', spike_init), ('adaptation', adaptation),
            ('decay', decay))}
        if rev_volt and switches['input_accum'] == 'CUB':
            raise ConfigError(f"{label}: rev_volt needs a conductance "
                              "(input_accum='COBE' or 'COBA'), not 'CUB'")
        self._used = self._used_params(switches, bool(rev_volt))
        super().__init__(feature_shape, param_shape, learnable, name)
        self.input_accum = switches['input_accum']
        self.refractory = switches['refractory']
        self.spike_init = switches['spike_init']
        self.adaptation = switches['adaptation']
        self.decay = switches['decay']
        self.rev_volt = bool(rev_volt)
        if mode not in ('spike', 'analog'):
            raise ConfigError(
                f"{label}: mode must be 'spike' or 'analog', got {mode!r}")
        if isinstance(memb_mode, bool) or memb_mode not in (0, 1, 2, 3):
            raise ConfigError(f'{label}: memb_mode must be 0 (u), 1 (u - '
                              f'threshold), 2 (r) or 3 (v_t), got '
                              f'{memb_mode!r}')
        if isinstance(refractory_steps, bool) or not isinstance(
                refractory_steps, int) or refractory_steps <= 0:
            raise ConfigError(f'{label}: refractory_steps must be a positive '
                              f'int, got {refractory_steps!r}')
        self.mode, self.memb_mode = mode, int(memb_mode)
        self.refractory_steps = refractory_steps
        unknown = set(params) - set(LIFPLUS_DEFAULTS)
        if unknown:
            raise ConfigError(f'{label}: unknown arguments {sorted(unknown)}')
        unused = set(params) - set(self._used)
        if unused:
            raise ConfigError(
                f'{label}: {sorted(unused)} not used by the chosen switches '
                f'(this configuration uses {list(self._used)})')
        for pname in self._used:
            self.add_neuron_param(pname, params.get(pname,
                                                    LIFPLUS_DEFAULTS[pname]))
        self._check_ranges()
        self.surrogate = build_surrogate(surrogate, owner=label)
        self.act = None
        if mode == 'analog' and act is not None:
            self.act = build_module(act, label, 'activation')
        names = ['v']
        if self.input_accum != 'CUB':
            names.append('g')
        if self.input_accum == 'COBA':
            names.append('y')
        if self.refractory == 'AR':
            names.append('cnt')
        if self.refractory == 'RR':
            names.append('q')
        if self.adaptation is not None:
            names.append('w')
        self.state_names = tuple(names)

    # ------------------------------------------------------------------
    @staticmethod
    def _used_params(sw, rev_volt):
        used = ['v_0']
        if sw['input_accum'] != 'CUB':
            used.append('epsilon')
        if rev_volt:
            used.append('v_g')
        if sw['refractory'] == 'RR':
            used += ['epsilon_r', 'v_rr', 'q_r']
        if sw['adaptation'] is not None:
            used += ['epsilon_w', 'b']
        if sw['adaptation'] == 'SBT':
            used += ['a', 'v_w']
        used.append('theta' if sw['spike_init'] != 'QDI' else 'v_theta')
        if sw['spike_init'] == 'EXI':
            used += ['v_theta', 'delta_t']
        if sw['spike_init'] == 'QDI':
            used.append('v_c')
        if sw['decay'] is None:
            used += ['alpha', 'beta']
        if sw['decay'] == 'LID':
            used.append('v_leak')
        if sw['decay'] == 'EXD' or sw['spike_init'] is not None or \
                sw['adaptation'] == 'SBT':
            used.append('tau_recip')
        return tuple(used)

    def param_names(self):
        return self._used

    def _check_ranges(self):
        label = self._label

        def has(pname):
            return pname in self._used

        def within(pname, low, high, low_open=False):
            value = getattr(self, pname).detach()
            bad = (value <= low) if low_open else (value < low)
            if bad.any() or (value > high).any():
                bracket = '(' if low_open else '['
                raise ConfigError(
                    f'{label}: {pname} must lie in {bracket}{low}, {high}], '
                    f'got values in [{value.min().item()}, '
                    f'{value.max().item()}]')

        for pname, low_open in (('epsilon', True), ('tau_recip', True),
                                ('epsilon_r', False), ('epsilon_w', False),
                                ('alpha', False)):
            if has(pname):
                within(pname, 0.0, 1.0, low_open)
        for pname in ('q_r', 'b', 'v_leak'):
            if has(pname) and (getattr(self, pname) < 0).any():
                raise ConfigError(f'{label}: {pname} must be >= 0')
        if has('delta_t') and not (self.delta_t > 0).all():
            raise ConfigError(f'{label}: delta_t (sharpness) must be > 0')
        threshold = 'theta' if self.spike_init is None else 'v_theta'
        if not (getattr(self, threshold) > self.v_0).all():
            raise ConfigError(f'{label}: {threshold} (firing threshold) must '
                              'be above v_0 (reset), else a reset neuron '
                              'fires forever')
        if self.spike_init == 'EXI' and not (self.theta < self.v_theta).all():
            raise ConfigError(f'{label}: theta (rheobase) must be below '
                              'v_theta (spike cut-off) with EXI')
        if self.spike_init == 'QDI' and not (
                (self.v_0 < self.v_c) & (self.v_c < self.v_theta)).all():
            raise ConfigError(f'{label}: QDI needs v_0 < v_c (critical '
                              'voltage) < v_theta')

    # ------------------------------------------------------------------
    def init_state(self, x_t):
        """Every state variable starts at zero."""
        return {key: torch.zeros_like(x_t) for key in self.state_names}

    @property
    def v0(self):
        """The reset potential under LIF's name (LIF+ calls it ``v_0``)."""
        return self.v_0

    def leak_factor(self):
        """``alpha`` (used only with ``decay=None``)."""
        return self.alpha

    def neuronal_leak(self, r):
        """``alpha r + beta`` (decay ``None``), else ``r``: EXD and LID
        decay before firing."""
        return super().neuronal_leak(r) if self.decay is None else r

    def threshold(self):
        """The firing threshold: ``theta`` or, with EXI/QDI, ``v_theta``."""
        return self.theta if self.spike_init is None else self.v_theta

    def step(self, x_t, state=None):
        """One step of the equations; ``state`` holds ``state_names``."""
        if state is None:
            state = self.init_state(x_t)
        v = state['v']
        new = {}
        # 1. input accumulation (and reversal voltage)
        if self.input_accum == 'CUB':
            drive = x_t
        else:
            keep = 1.0 - self.epsilon
            if self.input_accum == 'COBE':
                g = keep * state['g'] + x_t
            else:
                y = keep * state['y'] + x_t
                g = keep * state['g'] + math.e * self.epsilon * y
                new['y'] = y
            new['g'] = drive = g
            if self.rev_volt:
                drive = g * (self.v_g - v)
        # 2. refractory period
        if self.refractory == 'AR':
            cnt = state['cnt']
            drive = drive * (cnt <= 0).to(x_t.dtype)
            cnt = (cnt - 1.0).clamp_min(0.0)
        u = self.neuronal_charge(drive, v)
        if self.refractory == 'RR':
            q = (1.0 - self.epsilon_r) * state['q']
            u = u + q * (self.v_rr - v)
        # 3. adaptation current
        if self.adaptation is not None:
            w = (1.0 - self.epsilon_w) * state['w']
            if self.adaptation == 'SBT':
                w = w + self.tau_recip * self.a * (v - self.v_w)
            u = u - w
        # 4. spike initiation
        if self.spike_init == 'EXI':
            u = u + self.tau_recip * self.delta_t * torch.exp(
                (v - self.theta) / self.delta_t)
        elif self.spike_init == 'QDI':
            u = u + self.tau_recip * (v - self.v_0) * (v - self.v_c)
        # 5. decay before firing
        if self.decay == 'EXD':
            u = u + self.tau_recip * (self.v_0 - v)
        elif self.decay == 'LID':
            u = u - self.v_leak
        # 6. fire, reset, leak
        threshold = self.threshold()
        s = self.neuronal_fire(u, threshold)
        r = self.neuronal_reset(u, s, threshold)
        v_next = self.neuronal_leak(r)
        new['v'] = v_next
        # 7. spike effects
        if self.refractory == 'AR':
            new['cnt'] = s.detach() * self.refractory_steps + \
                (1.0 - s.detach()) * cnt
        elif self.refractory == 'RR':
            new['q'] = q + self.q_r * s
        if self.adaptation is not None:
            new['w'] = w + self.b * s
        out = self.neuronal_output(u, s, r, v_next, threshold)
        return out, {key: new[key] for key in self.state_names}

    def extra_repr(self):
        return (f'input_accum={self.input_accum!r}, rev_volt={self.rev_volt}, '
                f'refractory={self.refractory!r}, spike_init='
                f'{self.spike_init!r}, adaptation={self.adaptation!r}, '
                f'decay={self.decay!r}, mode={self.mode!r}, ' +
                super().extra_repr())
