"""LIFPlus: BIDL's LIF with six switchable biological features.

BIDL (Lynxi, 2023) extends its LIF by six independent switches, each a
well-known mechanism of point-neuron models (Gerstner et al., "Neuronal
Dynamics", 2014; Brette & Gerstner 2005 for the adaptation current;
Fourcaud-Trocme et al. 2003 for the exponential spike initiation). BIDL's
switch list ``[input_accum, rev_volt, fire_refrac, spike_init,
trig_current, memb_decay]`` maps to ``input_accum`` (0 CUB, 1 COBE, 2 COBA),
``rev_volt``, ``refractory`` (0 none, 1 AR, 2 RR), ``spike_init`` (0 none,
1 EXI, 2 QDI), ``adaptation`` (0 none, 1 ADT, 2 SBT) and ``decay`` (0 none,
1 EXD, 2 LID); integer codes and names are both accepted. Parameter names
are BIDL's (``epsilon, v_g, tau_recip, v_0, epsilon_r, v_rr, v_ar, q_r,
epsilon_w, b, a, v_w, theta, v_theta, delta_t, v_c, alpha, beta, v_leak``)
with fixed, documented defaults (:data:`LIFPLUS_DEFAULTS`; BIDL draws the
ones its ``SOMA_PARAMS`` leave ``None`` uniformly in [0, 1)).

Two formulations (``formulation=``), both in docs/neurons.md:

``'bidl'`` (default): BIDL's ``layers/lifplus.py`` (1.9.0) to the last
digit. With ``v = v_{t-1}`` and the state starting at ``g = y = q = 1``
(BIDL's ``reset`` fills g, y and its refractory conductance r with ones),
``v = cnt = w = 0``:

1. accumulation: CUB ``I = x_t``; COBE ``g = (1 - epsilon) g + x_t``,
   ``I = g``; COBA ``y = (1 - epsilon) y + x_t``,
   ``g = (1 - epsilon) g + e epsilon y``, ``I = g``. Reversal voltage:
   ``I = I (v_g - v)``.
2. AR: ``I = 0`` where ``cnt > 0``; ``cnt = max(cnt - 1, 0)``.
   RR: ``q = (1 - epsilon_r) q``, ``w = (1 - epsilon_w) w``,
   ``E = q (v_rr - v) + w (v_ar - v)`` (else ``E = 0``).
3. initiation: none ``P = v_0 - v`` (threshold ``theta``); EXI
   ``P = v_0 - v + delta_t exp(v - theta - delta_t)``, QDI
   ``P = (v_0 - v)(v_c - v)`` (threshold ``v_theta``).
4. ADT ``w = (1 - epsilon_w) w``; SBT
   ``w = (1 - epsilon_w) w + tau_recip a (v - v_w)``; then ``E = E + w``.
5. ``u = x_t + tau_recip (I + P) + E``; ``u = BN(u)`` with ``norm_state``.
6. ``s = H(u - threshold)``; ``r = s v_0 + (1 - s) u``.
7. spike effects: AR ``cnt = (1 - s) cnt + s refractory_steps``; RR
   ``q = q - s q_r``, ``w = w - s b``; ADT/SBT (without RR) ``w = w - s b``.
8. next potential: none ``v_t = alpha r + beta``; EXD
   ``v_t = tau_recip (I + P) + E`` (the reset is not used); LID
   ``v_t = v + I - v_leak + E``.

Note the raw input ``x_t`` enters ``u`` besides the drive ``I``, the
membrane does not carry ``v`` into ``u`` (only ``tau_recip (v_0 - v)``
does), RR and adaptation together decay ``w`` twice a step, and the
training noise perturbs only the ``v`` of LID's step 8 (BIDL adds it in
place to the stored potential after every other use of it): with any other
decay the noise has no effect, as in BIDL.

``'accumulating'``: our re-derivation, where the membrane integrates
``v_{t-1}`` in every mode and every state starts at 0; with every switch
off it is exactly BIDL's LIF (hard reset):

1. drive ``I``: CUB ``x_t``; COBE ``g = (1 - epsilon) g + x_t``; COBA as
   above; reversal voltage ``I = g (v_g - v)``.
2. AR blocks ``I`` while ``cnt > 0`` (as above); RR adds
   ``q (v_rr - v)`` with ``q = (1 - epsilon_r) q`` and a spike adds
   ``q_r`` to ``q``.
3. adaptation current ``w`` subtracted: ADT ``w = (1 - epsilon_w) w``,
   SBT adds ``tau_recip a (v - v_w)``; a spike adds ``b``.
4. initiation ``N``: EXI ``tau_recip delta_t exp((v - theta)/delta_t)``,
   QDI ``tau_recip (v - v_0)(v - v_c)`` (threshold ``v_theta``).
5. decay ``L``: EXD ``tau_recip (v_0 - v)``, LID ``-v_leak``.
6. ``u = BN(v + I + [q (v_rr - v)] - [w] + N + L)``, training noise on
   ``u`` as LIF's; fire, hard reset to ``v_0``; ``v_t = alpha r + beta``
   (no decay switch) or ``v_t = r`` (EXD, LID).

Output ``s``, or in analog mode ``act([u, u - threshold, r, v_t][memb_mode])``
with ``act`` tanh for ``'bidl'`` (BIDL's LifPlus ``MEMB_MODE``) and ReLU
for ``'accumulating'`` unless given.

The LIF parts are LIF's own pieces
(:class:`~bidl_train.neurons.lif.LIFEquations`): the fire, the hard reset
to ``v_0``, the leak, the noise scale and the output selection.
"""
import math

import torch

from bidl_train.errors import ConfigError
from bidl_train.registry import MODELS
from .base import BaseNeuron
from .build import build_module
from .lif import LIFEquations, membrane_batchnorm
from .surrogate import build_surrogate

__all__ = ['LIFPlus', 'LIFPLUS_DEFAULTS', 'LIFPLUS_FORMULATIONS']

#: Default parameter values (deterministic; BIDL draws missing ones at random).
LIFPLUS_DEFAULTS = dict(
    epsilon=0.5, v_g=2.0, tau_recip=0.5, v_0=0.0, epsilon_r=0.5, v_rr=-1.0,
    v_ar=-1.0, q_r=0.5, epsilon_w=0.5, b=0.1, a=0.1, v_w=0.0, theta=0.5,
    v_theta=1.0, delta_t=0.1, v_c=0.5, alpha=0.3, beta=0.0, v_leak=0.05)

LIFPLUS_FORMULATIONS = ('bidl', 'accumulating')

#: The analog activation each formulation uses unless ``act`` is given.
_DEFAULT_ACT = {'bidl': 'Tanh', 'accumulating': 'ReLU'}

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


def _used_params(sw, rev_volt, formulation):
    """The parameters the switches read, in a fixed order."""
    bidl = formulation == 'bidl'
    used = ['v_0']
    if sw['input_accum'] != 'CUB':
        used.append('epsilon')
    if rev_volt:
        used.append('v_g')
    if sw['refractory'] == 'RR':
        used += ['epsilon_r', 'v_rr', 'q_r']
        if bidl:  # BIDL's RR also drives w towards v_ar
            used += ['v_ar', 'epsilon_w', 'b']
    if sw['adaptation'] is not None and 'b' not in used:
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
    if bidl or sw['decay'] == 'EXD' or sw['spike_init'] is not None or \
            sw['adaptation'] == 'SBT':
        used.append('tau_recip')  # BIDL's u always reads tau_recip
    return tuple(used)


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
        formulation (str): ``'bidl'`` (BIDL's equations, default) or
            ``'accumulating'`` (ours; see the module docstring).
        norm_state (bool): BatchNorm on the membrane ``u`` before firing
            (BIDL's ``Conv2dLifPlus``/``FcLifPlus`` default to it; needs
            ``feature_shape``).
        noise (float): training noise scale, ``>= 0`` (see the module
            docstring for where each formulation applies it).
        surrogate: surrogate gradient (default ``'rectangle'``).
        mode (str): ``'spike'`` or ``'analog'``; ``memb_mode`` as for
            :class:`~bidl_train.neurons.LIF`.
        act: analog activation; ``'auto'`` (default) is tanh for
            ``'bidl'`` and ReLU for ``'accumulating'``; None is identity.
        feature_shape, param_shape, learnable, name: as for every neuron.
        **params: the neuron parameters used by the chosen switches (see
            :data:`LIFPLUS_DEFAULTS`); a parameter no switch uses is refused.
    """

    # what the LIF pieces read: LIF+ always resets hard to v_0, with the
    # spike attached
    reset = 'hard'
    detach_reset = False

    def __init__(self, input_accum='CUB', rev_volt=False, refractory=None,
                 spike_init=None, adaptation=None, decay=None,
                 refractory_steps=10, formulation='bidl', norm_state=False,
                 noise=0.0, surrogate='rectangle', mode='spike', memb_mode=0,
                 act='auto', feature_shape=None, param_shape='layer',
                 learnable=(), name=None, **params):
        label = name or 'LIFPlus'
        if formulation not in LIFPLUS_FORMULATIONS:
            raise ConfigError(f'{label}: formulation must be one of '
                              f'{LIFPLUS_FORMULATIONS}, got {formulation!r}')
        switches = {key: _parse_switch(label, key, value) for key, value in (
            ('input_accum', input_accum), ('refractory', refractory),
            ('spike_init', spike_init), ('adaptation', adaptation),
            ('decay', decay))}
        if rev_volt and switches['input_accum'] == 'CUB':
            raise ConfigError(f"{label}: rev_volt needs a conductance "
                              "(input_accum='COBE' or 'COBA'), not 'CUB'")
        self.formulation = formulation
        self._used = _used_params(switches, bool(rev_volt), formulation)
        super().__init__(feature_shape, param_shape, learnable, name)
        self.input_accum = switches['input_accum']
        self.refractory = switches['refractory']
        self.spike_init = switches['spike_init']
        self.adaptation = switches['adaptation']
        self.decay = switches['decay']
        self.rev_volt = bool(rev_volt)
        self._check_options(mode, memb_mode, refractory_steps, noise)
        self.mode, self.memb_mode = mode, int(memb_mode)
        self.refractory_steps = refractory_steps
        self.noise = float(noise)
        self._add_params(params)
        self._check_ranges()
        self.surrogate = build_surrogate(surrogate, owner=label)
        if act == 'auto':
            act = _DEFAULT_ACT[formulation]
        self.act = None
        if mode == 'analog' and act is not None:
            self.act = build_module(act, label, 'activation')
        self.norm = (membrane_batchnorm(self.feature_shape, label)
                     if norm_state else None)
        self.state_names = self._state_names()

    # ------------------------------------------------------------------
    def _check_options(self, mode, memb_mode, refractory_steps, noise):
        label = self._label
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
        if not isinstance(noise, (int, float)) or isinstance(noise, bool) \
                or not noise >= 0 or not math.isfinite(noise):
            raise ConfigError(
                f'{label}: noise must be a finite number >= 0, got {noise!r}')

    def _add_params(self, params):
        label = self._label
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

    def _state_names(self):
        names = ['v']
        if self.input_accum != 'CUB':
            names.append('g')
        if self.input_accum == 'COBA':
            names.append('y')
        if self.refractory == 'AR':
            names.append('cnt')
        if self.refractory == 'RR':
            names.append('q')
        if self.adaptation is not None or (self.refractory == 'RR' and
                                           self.formulation == 'bidl'):
            names.append('w')
        return tuple(names)

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
        """``v``, ``cnt`` and ``w`` start at 0; with ``'bidl'`` the
        conductances ``g``, ``y`` and ``q`` start at 1 (BIDL's reset),
        with ``'accumulating'`` at 0."""
        ones = ('g', 'y', 'q') if self.formulation == 'bidl' else ()
        return {key: (torch.ones_like(x_t) if key in ones else
                      torch.zeros_like(x_t)) for key in self.state_names}

    @property
    def v0(self):
        """The reset potential under LIF's name (LIF+ calls it ``v_0``)."""
        return self.v_0

    def leak_factor(self):
        """``alpha`` (used only with ``decay=None``)."""
        return self.alpha

    def threshold(self):
        """The firing threshold: ``theta`` or, with EXI/QDI, ``v_theta``."""
        return self.theta if self.spike_init is None else self.v_theta

    def _membrane(self, u):
        return u if self.norm is None else self.norm(u)

    def _conductance(self, x_t, state, new):
        """Step 1's drive ``I`` (before the reversal voltage)."""
        if self.input_accum == 'CUB':
            return x_t
        keep = 1.0 - self.epsilon
        if self.input_accum == 'COBE':
            g = keep * state['g'] + x_t
        else:
            y = keep * state['y'] + x_t
            g = keep * state['g'] + math.e * self.epsilon * y
            new['y'] = y
        new['g'] = g
        return g

    def _refractory_block(self, drive, state):
        """AR: no drive while the counter runs; the counted-down counter."""
        cnt = state['cnt']
        drive = drive * (cnt <= 0).to(drive.dtype)
        return drive, (cnt - 1.0).clamp_min(0.0)

    def step(self, x_t, state=None):
        """One step of the equations; ``state`` holds ``state_names``."""
        if state is None:
            state = self.init_state(x_t)
        if self.formulation == 'bidl':
            out, new = self._bidl_step(x_t, state)
        else:
            out, new = self._accumulating_step(x_t, state)
        return out, {key: new[key] for key in self.state_names}

    def _bidl_step(self, x_t, state):
        """BIDL's ``LifPlus.forward`` (module docstring, steps 1-8)."""
        v = state['v']
        new = {}
        drive = self._conductance(x_t, state, new)
        if self.rev_volt:
            drive = drive * (self.v_g - v)
        extra = 0.0
        w = state.get('w')
        if self.refractory == 'AR':
            drive, cnt = self._refractory_block(drive, state)
        elif self.refractory == 'RR':
            q = (1.0 - self.epsilon_r) * state['q']
            w = (1.0 - self.epsilon_w) * w
            extra = q * (self.v_rr - v) + w * (self.v_ar - v)
        pull = self.v_0 - v
        if self.spike_init == 'EXI':
            pull = pull + self.delta_t * torch.exp(v - self.theta -
                                                   self.delta_t)
        elif self.spike_init == 'QDI':
            pull = pull * (self.v_c - v)
        if self.adaptation is not None:
            w = (1.0 - self.epsilon_w) * w
            if self.adaptation == 'SBT':
                w = w + self.tau_recip * self.a * (v - self.v_w)
            extra = extra + w
        synaptic = self.tau_recip * (drive + pull) + extra
        u = self._membrane(x_t + synaptic)
        threshold = self.threshold()
        s = self.neuronal_fire(u, threshold)
        r = self.neuronal_reset(u, s, threshold)
        if self.refractory == 'AR':
            new['cnt'] = s.detach() * self.refractory_steps + \
                (1.0 - s.detach()) * cnt
        elif self.refractory == 'RR':
            new['q'] = q - self.q_r * s
        if 'w' in self.state_names:
            new['w'] = w - self.b * s
        if self.decay is None:
            v_next = self.neuronal_leak(r)
        elif self.decay == 'EXD':
            v_next = synaptic
        else:  # LID; BIDL's training noise lands on this v only
            v_next = self.neuronal_noise(v) + drive - self.v_leak + extra
        new['v'] = v_next
        return self.neuronal_output(u, s, r, v_next, threshold), new

    def _accumulating_step(self, x_t, state):
        """Our re-derivation (module docstring, ``'accumulating'``)."""
        v = state['v']
        new = {}
        drive = self._conductance(x_t, state, new)
        if self.rev_volt:
            drive = drive * (self.v_g - v)
        if self.refractory == 'AR':
            drive, cnt = self._refractory_block(drive, state)
        current = drive
        if self.refractory == 'RR':
            q = (1.0 - self.epsilon_r) * state['q']
            current = current + q * (self.v_rr - v)
        if self.adaptation is not None:
            w = (1.0 - self.epsilon_w) * state['w']
            if self.adaptation == 'SBT':
                w = w + self.tau_recip * self.a * (v - self.v_w)
            current = current - w
        if self.spike_init == 'EXI':
            current = current + self.tau_recip * self.delta_t * torch.exp(
                (v - self.theta) / self.delta_t)
        elif self.spike_init == 'QDI':
            current = current + self.tau_recip * (v - self.v_0) * (
                v - self.v_c)
        if self.decay == 'EXD':
            current = current + self.tau_recip * (self.v_0 - v)
        elif self.decay == 'LID':
            current = current - self.v_leak
        u = self.neuronal_charge(current, v)  # u = BN(I_total + v)
        u_noisy = self.neuronal_noise(u)
        threshold = self.threshold()
        s = self.neuronal_fire(u_noisy, threshold)
        r = self.neuronal_reset(u_noisy, s, threshold)
        v_next = self.neuronal_leak(r) if self.decay is None else r
        new['v'] = v_next
        if self.refractory == 'AR':
            new['cnt'] = s.detach() * self.refractory_steps + \
                (1.0 - s.detach()) * cnt
        elif self.refractory == 'RR':
            new['q'] = q + self.q_r * s
        if self.adaptation is not None:
            new['w'] = w + self.b * s
        out = self.neuronal_output(u, s, r, v_next, threshold, u_noisy)
        return out, new

    def extra_repr(self):
        return (f'formulation={self.formulation!r}, '
                f'input_accum={self.input_accum!r}, rev_volt={self.rev_volt}, '
                f'refractory={self.refractory!r}, spike_init='
                f'{self.spike_init!r}, adaptation={self.adaptation!r}, '
                f'decay={self.decay!r}, norm_state={self.norm is not None}, '
                f'noise={self.noise}, mode={self.mode!r}, ' +
                super().extra_repr())
