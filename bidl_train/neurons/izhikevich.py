"""Izhikevich's simple spiking model, forward-Euler in discrete steps.

Source: E. M. Izhikevich, "Simple model of spiking neurons", IEEE Trans.
Neural Networks 14(6), 2003:

    v' = 0.04 v^2 + 5 v + 140 - u + I
    u' = a (b v - u)
    if v >= 30 mV:  v <- c,  u <- u + d

(``v`` in mV, time in ms). One step of length ``dt`` (ms), with input
``x_t`` as the current ``I`` and state ``(v_{t-1}, u_{t-1})``:

1. ``v' = v_{t-1} + dt (0.04 v_{t-1}^2 + 5 v_{t-1} + 140 - u_{t-1} + x_t)``
2. ``u' = u_{t-1} + dt a (b v_{t-1} - u_{t-1})``  (both from the old state)
3. ``s = H(v' - v_peak)`` with ``H(0) = 1`` (fires at ``v' >= v_peak``;
   surrogate gradient of ``v' - v_peak`` backward)
4. ``v_t = s c + (1 - s) v'``,  ``u_t = u' + s d``

The state starts at rest: ``v_{-1} = v_init`` (-65 mV, as in the paper's
code) and ``u_{-1} = b v_init``. The paper's own code takes two half steps of
``v`` per ms; here ``dt`` is a free parameter (0.5 by default).

Presets (Fig. 2 of the paper; ``a, b, c, d``):

========================  ======================  =====  ====  ===  ===
preset                    behaviour               a      b     c    d
========================  ======================  =====  ====  ===  ===
``regular_spiking``       tonic, adapting (RS)    0.02   0.2   -65  8
``intrinsically_bursting`` initial burst (IB)     0.02   0.2   -55  4
``chattering``            repetitive bursts (CH)  0.02   0.2   -50  2
``fast_spiking``          fast, no adapt. (FS)    0.1    0.2   -65  2
``low_threshold_spiking`` LTS                     0.02   0.25  -65  2
``thalamo_cortical``      TC                      0.02   0.25  -65  0.05
``resonator``             RZ                      0.1    0.26  -65  2
========================  ======================  =====  ====  ===  ===

The short names ``RS, IB, CH, FS, LTS, TC, RZ`` are accepted too. The
network simulator (:mod:`bidl_train.neurosim`) runs the same equations
(:func:`izhikevich_euler`) and the same table.
"""
import math

import torch

from bidl_train.errors import ConfigError
from bidl_train.registry import MODELS
from .base import BaseNeuron
from .surrogate import build_surrogate

__all__ = ['Izhikevich', 'IZHIKEVICH_PRESETS', 'IZHIKEVICH_SHORT_NAMES',
           'izhikevich_euler']

#: ``name: (a, b, c, d)`` from Izhikevich (2003), Fig. 2.
IZHIKEVICH_PRESETS = {
    'regular_spiking': (0.02, 0.2, -65.0, 8.0),
    'intrinsically_bursting': (0.02, 0.2, -55.0, 4.0),
    'chattering': (0.02, 0.2, -50.0, 2.0),
    'fast_spiking': (0.1, 0.2, -65.0, 2.0),
    'low_threshold_spiking': (0.02, 0.25, -65.0, 2.0),
    'thalamo_cortical': (0.02, 0.25, -65.0, 0.05),
    'resonator': (0.1, 0.26, -65.0, 2.0),
}
#: the paper's abbreviations
IZHIKEVICH_SHORT_NAMES = {
    'RS': 'regular_spiking', 'IB': 'intrinsically_bursting',
    'CH': 'chattering', 'FS': 'fast_spiking', 'LTS': 'low_threshold_spiking',
    'TC': 'thalamo_cortical', 'RZ': 'resonator'}


def izhikevich_euler(v, u, current, a, b, dt):
    """Steps 1-2 of the module docstring: ``(v', u')`` from the old state.

    The one place the sub-threshold equations are written; the trainable
    neuron and the simulator's population both call it.
    """
    v_new = v + dt * (0.04 * v * v + 5.0 * v + 140.0 - u + current)
    u_new = u + dt * a * (b * v - u)
    return v_new, u_new


def _finite(owner, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value):
        raise ConfigError(f'{owner}: {name} must be a finite number, got '
                          f'{value!r}')
    return float(value)


@MODELS.register_module()
class Izhikevich(BaseNeuron):
    """Izhikevich (2003) neuron, see the module docstring.

    Args:
        preset (str): one of :data:`IZHIKEVICH_PRESETS` (or RS, IB, CH, FS,
            LTS, TC, RZ). Default ``'regular_spiking'``.
        a, b, c, d (float | Tensor | None): override the preset's value.
            ``a > 0`` (recovery rate), ``d >= 0`` (after-spike jump of u),
            ``c < v_peak`` (reset potential).
        dt (float): Euler step in ms, in ``(0, 1]``. Default 0.5.
        v_peak (float): spike cut-off in mV. Default 30.
        v_init (float): resting potential at the start, ``< v_peak``.
            Default -65.
        surrogate: surrogate gradient of ``v' - v_peak`` (default
            ``'rectangle'``).
        feature_shape, param_shape, learnable, name: as for every neuron
            (``learnable`` may name ``a, b, c, d``).
    """

    state_names = ('v', 'u')

    def __init__(self, preset='regular_spiking', a=None, b=None, c=None,
                 d=None, dt=0.5, v_peak=30.0, v_init=-65.0,
                 surrogate='rectangle', feature_shape=None,
                 param_shape='layer', learnable=(), name=None):
        super().__init__(feature_shape, param_shape, learnable, name)
        label = self._label
        key = IZHIKEVICH_SHORT_NAMES.get(preset, preset)
        if key not in IZHIKEVICH_PRESETS:
            raise ConfigError(
                f'{label}: preset must be one of '
                f'{sorted(IZHIKEVICH_PRESETS)} or '
                f'{sorted(IZHIKEVICH_SHORT_NAMES)}, '
                f'got {preset!r}')
        self.preset = key
        self.dt = _finite(label, 'dt', dt)
        if not 0 < self.dt <= 1:
            raise ConfigError(f'{label}: dt (Euler step, ms) must lie in '
                              f'(0, 1], got {dt!r}')
        self.v_peak = _finite(label, 'v_peak', v_peak)
        self.v_init = _finite(label, 'v_init', v_init)
        if not self.v_init < self.v_peak:
            raise ConfigError(f'{label}: v_init ({v_init}) must be below '
                              f'v_peak ({v_peak})')
        for pname, default, value in zip('abcd', IZHIKEVICH_PRESETS[key],
                                         (a, b, c, d)):
            self.add_neuron_param(pname, default if value is None else value)
        if not self.a.min() > 0:
            raise ConfigError(f'{label}: a (recovery rate) must be > 0')
        if self.d.min() < 0:
            raise ConfigError(f'{label}: d (after-spike jump of u) must be '
                              '>= 0')
        if not (self.c < self.v_peak).all():
            raise ConfigError(f'{label}: c (reset potential) must be below '
                              f'v_peak ({self.v_peak}), else a reset neuron '
                              'fires forever')
        self.surrogate = build_surrogate(surrogate, owner=label)

    def param_names(self):
        return ('a', 'b', 'c', 'd')

    def init_state(self, x_t):
        """Rest: ``v = v_init``, ``u = b v_init``."""
        v = torch.full_like(x_t, self.v_init)
        return {'v': v, 'u': (self.b * v).expand_as(x_t).clone()}

    def step(self, x_t, state=None):
        """One Euler step; ``state = {'v': v_{t-1}, 'u': u_{t-1}}``."""
        if state is None:
            state = self.init_state(x_t)
        v_new, u_new = izhikevich_euler(state['v'], state['u'], x_t, self.a,
                                        self.b, self.dt)
        over = v_new - self.v_peak
        # the surrogate fires on over > 0; the paper's rule is v >= v_peak
        s = self.surrogate(over) + (over == 0).to(over.dtype)
        v_next = s * self.c + (1.0 - s) * v_new
        u_next = u_new + s * self.d
        return s, {'v': v_next, 'u': u_next}

    def extra_repr(self):
        return (f'preset={self.preset!r}, dt={self.dt}, v_peak={self.v_peak},'
                f' v_init={self.v_init}, ' + super().extra_repr())
