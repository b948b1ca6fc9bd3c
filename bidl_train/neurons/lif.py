"""BIDL's leaky integrate-and-fire neuron (LIF / LIAF).

Per step t, with synaptic input ``x_t`` and stored potential ``v_{t-1}``
(``v_{-1} = 0``):

1. integrate      ``u = x_t + v_{t-1}``
2. homeostasis    ``u = BN(u)``                      (only with ``norm_state``)
3. noise          ``u~ = u + noise * std(u) * N(0,1)`` (training mode only;
                  else ``u~ = u``)
4. fire           ``s = H(u~ - theta)``  (strict ``>``; surrogate backward)
5. reset          hard ``r = s*v0 + (1-s)*u~``  or  soft ``r = u~ - s*theta``
                  (``detach_reset``: ``s`` is detached inside the reset)
6. leak           ``v_t = alpha*r + beta``

Output: ``s`` (``mode='spike'``), or in analog/LIAF mode
``act([u, u~ - theta, r, v_t][memb_mode])`` where ``u`` is the membrane
before the training noise and ``u~`` after it (BIDL's ``o1`` is taken before
its ``add_noise``); in eval mode the two are equal.

With ``beta = 0``, ``v0 = 0`` and hard reset this is SpikingJelly's
``LIFNode(tau, decay_input=False, v_reset=0)`` with ``alpha = 1 - 1/tau``.

The noise scale ``std(u)`` is BIDL's (``Lif.add_noise``): the unbiased
standard deviation (``torch.std``'s default, divisor ``n - 1``) per sample
and channel over the spatial dims for ``[B, C, ...]`` inputs, and over the
whole batch (every sample and feature at once) for ``[B, N]`` inputs. Where
a channel's map has a single position (1x1 maps, or a length-1 signal) the
unbiased std of one value is undefined: BIDL's gives NaN there, which turns
the membrane into NaN and silences the neuron for the rest of the sequence;
here such a map gets no noise (scale 0), so the neuron keeps working. The
noise term carries no gradient.

The equations are written once, as the pieces of :class:`LIFEquations`
(charge, fire, reset, leak, output; see
:class:`~bidl_train.neurons.base.SpikingDynamics`). :class:`LIF` composes
them in :meth:`LIF.step`; ALIF runs them against its moving threshold,
LIFPlus fires, resets, leaks and selects its output with them, and the
deployed node (:class:`bidl_train.deploy.nodes.LIFNode`) runs the same
composition on its plain parameter tensors.

The multi-step form uses the fused kernel of
:mod:`bidl_train.neurons.functional` whenever the options allow it (no
active noise): :func:`~bidl_train.neurons.functional.lif_multistep`, or with
``norm_state`` :func:`~bidl_train.neurons.functional.lif_multistep_bn`,
which runs the membrane BatchNorm inside the kernel (per-step batch
statistics, the module's running statistics updated step by step as calling
it per step would); otherwise it runs :meth:`LIF.step` in a loop. Both give
the same numbers, gradients and running statistics (to rounding).
"""
import math

import torch
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.registry import MODELS
from .base import BaseNeuron, SpikingDynamics
from .build import build_module
from .functional import announce_kernel, lif_multistep, lif_multistep_bn
from .surrogate import build_surrogate

__all__ = ['LIF', 'LIFEquations', 'membrane_batchnorm', 'noise_scale']

_BACKENDS = ('auto', 'fused', 'loop')
_BATCHNORMS = {1: nn.BatchNorm1d, 2: nn.BatchNorm1d, 3: nn.BatchNorm2d,
               4: nn.BatchNorm3d}


class LIFEquations(SpikingDynamics):
    """BIDL's LIF step (the module docstring's equations), written once.

    A mixin for any host that has the parameters as attributes:
    ``leak_factor()`` (alpha), ``beta``, ``theta``, ``v0`` (tensors that
    broadcast over ``[B, ...]``), ``reset`` (``'hard'``/``'soft'``),
    ``detach_reset``, ``norm`` (None or a module applied to ``u``),
    ``surrogate`` (the spike function, see ``neuronal_fire``), ``mode``,
    ``memb_mode`` and ``act`` (None or the analog activation).
    """

    def neuronal_charge(self, x_t, v_prev):
        """1-2. ``u = x_t + v_{t-1}``, then the membrane norm if any."""
        u = x_t + v_prev
        if self.norm is not None:
            u = self.norm(u)
        return u

    def neuronal_reset(self, u, s, threshold):
        """5. hard ``r = s*v0 + (1-s)*u`` or soft ``r = u - s*threshold``
        (``s`` detached first with ``detach_reset``)."""
        if self.detach_reset:
            s = s.detach()
        if self.reset == 'hard':
            return s * self.v0 + (1.0 - s) * u
        return u - s * threshold

    def neuronal_leak(self, r):
        """6. ``v_t = alpha*r + beta``."""
        return self.leak_factor() * r + self.beta

    def neuronal_noise(self, u):
        """3. ``u + noise * std(u) * N(0, 1)`` in training mode; hosts
        without a ``noise`` setting (CubaLIF, the deployed node) add none."""
        noise = getattr(self, 'noise', 0)
        if not (self.training and noise > 0):
            return u
        with torch.no_grad():
            jitter = torch.randn_like(u) * (noise_scale(u) * noise)
        return u + jitter

    def neuronal_output(self, u, s, r, v, threshold, u_noisy=None):
        """``s``, or in analog mode
        ``act([u, u_noisy - threshold, r, v][k])``: ``u`` is the membrane
        before the training noise, ``u_noisy`` (default ``u``) after it."""
        if self.mode == 'spike':
            return s
        if u_noisy is None:
            u_noisy = u
        y = (u, u_noisy - threshold, r, v)[self.memb_mode]
        if self.act is not None:
            y = self.act(y)
        return y

    def lif_step(self, x_t, v_prev, threshold):
        """The whole step against ``threshold`` (``theta``, or ALIF's
        moving one): ``(y_t, s_t, v_t)``."""
        u = self.neuronal_charge(x_t, v_prev)
        u_noisy = self.neuronal_noise(u)
        s = self.neuronal_fire(u_noisy, threshold)
        r = self.neuronal_reset(u_noisy, s, threshold)
        v = self.neuronal_leak(r)
        return self.neuronal_output(u, s, r, v, threshold, u_noisy), s, v


def membrane_batchnorm(feature_shape, owner):
    """The ``norm_state`` BatchNorm for a per-sample ``feature_shape``."""
    if feature_shape is None or feature_shape[0] is None:
        raise ConfigError(
            f'{owner}: norm_state needs feature_shape (channel first) so the '
            'membrane BatchNorm knows its channel count')
    return _BATCHNORMS[len(feature_shape)](feature_shape[0])


def noise_scale(u):
    """BIDL's noise scale: the unbiased std of ``u`` per sample and channel
    over the spatial dims (``[B, C, ...]``), over the whole batch for
    ``[B, N]``; 0 where a single value is reduced (its std is undefined and
    BIDL's NaN would silence the neuron)."""
    if u.dim() > 2:
        dims = tuple(range(2, u.dim()))
        count = math.prod(u.shape[2:])
    else:
        dims = tuple(range(u.dim()))
        count = u.numel()
    if count < 2:
        shape = u.shape[:2] + (1, ) * (u.dim() - 2) if u.dim() > 2 else \
            (1, ) * u.dim()
        return u.new_zeros(shape)
    return u.std(dim=dims, keepdim=True, correction=1)


@MODELS.register_module()
class LIF(LIFEquations, BaseNeuron):
    """BIDL LIF neuron (see the module docstring for the equations).

    Args:
        alpha (float | Tensor): leak factor in ``[0, 1]``. Default 0.3.
        beta (float | Tensor): constant added after the leak. Default 0.
        theta (float | Tensor): firing threshold, ``> 0``. Default 0.5.
        v0 (float | Tensor): hard-reset potential, ``< theta``. Default 0.
        reset (str): ``'hard'`` or ``'soft'``.
        detach_reset (bool): detach the spike inside the reset.
        surrogate: name, config dict or module (see
            :func:`~bidl_train.neurons.surrogate.build_surrogate`).
            Default ``'rectangle'`` (width 1, BIDL's).
        norm_state (bool): BatchNorm on the membrane (needs
            ``feature_shape``).
        noise (float): training noise scale, ``>= 0``.
        mode (str): ``'spike'`` or ``'analog'`` (LIAF).
        memb_mode (int): analog output 0: u, 1: u - theta, 2: r, 3: v_t.
        act: analog-mode activation: a torch or registered module name
            (``'ReLU'``), a config dict, a module or None (identity).
        feature_shape (tuple): per-sample input shape, channel first.
        param_shape (str): ``'layer'``, ``'channel'`` or ``'neuron'``.
        learnable (tuple | bool): which of alpha, beta, theta, v0 train.
        backend (str): ``'auto'`` (fused when possible), ``'fused'``
            (refuse options the kernel does not cover) or ``'loop'``.
        kernel (str): which fused kernel: ``'auto'`` (Triton on CUDA, the
            compiled kernel on CPU, when they apply; else pure PyTorch),
            ``'cpp'`` or ``'triton'`` (refuse when that one cannot run) or
            ``'torch'``; see
            :func:`~bidl_train.neurons.functional.select_kernel`.
    """

    state_names = ('v', )

    def __init__(self,
                 alpha=0.3,
                 beta=0.0,
                 theta=0.5,
                 v0=0.0,
                 reset='hard',
                 detach_reset=False,
                 surrogate='rectangle',
                 norm_state=False,
                 noise=0.0,
                 mode='spike',
                 memb_mode=0,
                 act='ReLU',
                 feature_shape=None,
                 param_shape='layer',
                 learnable=(),
                 backend='auto',
                 name=None,
                 kernel='auto'):
        super().__init__(feature_shape, param_shape, learnable, name)
        label = self._label
        if kernel not in ('auto', 'cpp', 'triton', 'torch'):
            raise ConfigError(f"{label}: kernel must be 'auto', 'cpp', "
                              f"'triton' or 'torch', got {kernel!r}")
        self.kernel = kernel
        if reset not in ('hard', 'soft'):
            raise ConfigError(
                f"{label}: reset must be 'hard' or 'soft', got {reset!r}")
        if mode not in ('spike', 'analog'):
            raise ConfigError(
                f"{label}: mode must be 'spike' or 'analog', got {mode!r}")
        if isinstance(memb_mode, bool) or memb_mode not in (0, 1, 2, 3):
            raise ConfigError(
                f'{label}: memb_mode must be 0 (u), 1 (u - theta), 2 (reset '
                f'r) or 3 (v_t), got {memb_mode!r}')
        if not isinstance(noise, (int, float)) or isinstance(noise, bool) \
                or not noise >= 0 or not math.isfinite(noise):
            raise ConfigError(
                f'{label}: noise must be a finite number >= 0, got {noise!r}')
        if backend not in _BACKENDS:
            raise ConfigError(
                f'{label}: backend must be one of {_BACKENDS}, got '
                f'{backend!r}')
        self.reset = reset
        self.detach_reset = bool(detach_reset)
        self.mode = mode
        self.memb_mode = int(memb_mode)
        self.noise = float(noise)
        self.backend = backend

        self._init_leak(alpha)
        for pname, value in (('beta', beta), ('theta', theta), ('v0', v0)):
            self.add_neuron_param(pname, value)
        self._check_ranges()

        self.surrogate = build_surrogate(surrogate, owner=label)
        self.act = None
        if mode == 'analog' and act is not None:
            self.act = build_module(act, label, 'activation')
        self.norm = (membrane_batchnorm(self.feature_shape, label)
                     if norm_state else None)

    def param_names(self):
        return ('alpha', 'beta', 'theta', 'v0')

    def _init_leak(self, alpha):
        """Register the leak factor (subclasses parametrise it otherwise)."""
        self.add_neuron_param('alpha', alpha)

    def leak_factor(self):
        """``alpha`` as used by the equations."""
        return self.alpha

    def _check_ranges(self):
        label = self._label
        alpha, theta, v0 = self.leak_factor().detach(), self.theta, self.v0
        if alpha.min() < 0 or alpha.max() > 1:
            raise ConfigError(
                f'{label}: alpha (leak factor) must lie in [0, 1], got '
                f'values in [{alpha.min().item()}, {alpha.max().item()}]')
        if not theta.min() > 0:
            raise ConfigError(
                f'{label}: theta (threshold) must be > 0, got a minimum of '
                f'{theta.min().item()}')
        if self.reset == 'hard' and not (v0 < theta).all():
            raise ConfigError(
                f'{label}: with hard reset v0 ({v0.max().item()}) must be '
                f'below theta ({theta.min().item()}), else a reset neuron '
                'fires forever')

    # ------------------------------------------------------------------
    def init_state(self, x_t):
        """``v_{-1} = 0`` shaped like one input step."""
        return {'v': torch.zeros_like(x_t)}

    def step(self, x_t, state=None):
        """One step of the equations; ``state = {'v': v_{t-1}}``."""
        if state is None:
            state = self.init_state(x_t)
        y, _, v = self.lif_step(x_t, state['v'], self.theta)
        return y, {'v': v}

    # ------------------------------------------------------------------
    def uses_fused(self):
        """Whether the multi-step form runs the fused kernel right now."""
        if self.backend == 'loop':
            return False
        if self.training and self.noise > 0:
            if self.backend == 'fused':
                raise ConfigError(
                    f"{self._label}: backend='fused' does not cover training "
                    "noise; use backend='auto' or 'loop'")
            return False
        return True

    def forward(self, x_seq):
        self.check_sequence(x_seq)
        if not self.uses_fused():
            announce_kernel(self._label, 'per-step loop', (
                "backend='loop'" if self.backend == 'loop' else
                'training noise: the fused kernel has none'))
            return super().forward(x_seq)
        out_mode = 'spike' if self.mode == 'spike' else self.memb_mode
        params = (x_seq, self.leak_factor(), self.beta, self.theta, self.v0,
                  self.surrogate.derivative)
        if self.norm is not None:
            y = lif_multistep_bn(*params, self.norm, self.reset,
                                 self.detach_reset, out_mode, self.kernel,
                                 layer=self._label)
        else:
            y = lif_multistep(*params, self.reset, self.detach_reset,
                              out_mode, self.kernel, layer=self._label)
        if self.act is not None:
            y = self.act(y)
        return y

    def extra_repr(self):
        return (f'reset={self.reset!r}, detach_reset={self.detach_reset}, '
                f'mode={self.mode!r}, memb_mode={self.memb_mode}, '
                f'noise={self.noise}, backend={self.backend!r}, '
                f'kernel={self.kernel!r}, ' +
                super().extra_repr())
