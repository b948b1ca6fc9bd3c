"""Surrogate-gradient spike functions.

A spiking neuron fires ``s = H(x)`` with ``x = u - theta`` and the Heaviside
step ``H(x) = 1 if x > 0 else 0`` (strictly greater: a membrane exactly at
threshold does not fire, as in BIDL's ``torch.gt``). ``H`` has zero gradient
almost everywhere, so training replaces ``dH/dx`` in the backward pass by a
smooth or piecewise "surrogate" derivative ``g(x)``:

=======================  ===========================================  ==========
class (shortcut)         surrogate derivative ``g(x)``                default
=======================  ===========================================  ==========
RectangleSurrogate       ``1/w`` where ``|x| < w/2``, else 0           w = 1.0
('rectangle')            (BIDL's ``ThreshActRectangleGrad``)
SigmoidSurrogate         ``a * sig(a x) * (1 - sig(a x))``             a = 4.0
('sigmoid')              (SpikingJelly ``surrogate.Sigmoid``)
ATanSurrogate ('atan')   ``(a/2) / (1 + (pi/2 * a * x)^2)``            a = 2.0
TriangleSurrogate        ``max(0, 1 - |x|/w) / w``                     w = 1.0
('triangle')
FastSigmoidSurrogate     ``1 / (k |x| + 1)^2`` (SuperSpike)            k = 25
('fast_sigmoid')
ErfSurrogate ('erf')     ``a/sqrt(pi) * exp(-(a x)^2)``                a = 2.0
=======================  ===========================================  ==========

Every derivative except the fast sigmoid's integrates to one over the real
line, so the surrogate is the derivative of a smoothed step.

Each derivative is also a plain function of ``x`` (``rectangle_grad`` ...) and
a method ``derivative(x)`` of the module, so the fused multi-step kernel in
:mod:`bidl_train.neurons.functional` can evaluate it without autograd.
"""
import math

import torch
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.registry import MODELS

__all__ = [
    'rectangle_grad', 'sigmoid_grad', 'atan_grad', 'triangle_grad',
    'fast_sigmoid_grad', 'erf_grad', 'heaviside', 'SurrogateSpike',
    'BaseSurrogate', 'RectangleSurrogate', 'SigmoidSurrogate', 'ATanSurrogate',
    'TriangleSurrogate', 'FastSigmoidSurrogate', 'ErfSurrogate',
    'SURROGATE_SHORTCUTS', 'build_surrogate'
]


# --------------------------------------------------------------------------
# Plain derivative functions of x = u - theta
# --------------------------------------------------------------------------
def heaviside(x):
    """``H(x)``: 1.0 where ``x > 0`` (strictly), else 0.0, in ``x``'s dtype."""
    return (x > 0).to(x.dtype)


def rectangle_grad(x, width=1.0):
    """``1/width`` inside ``|x| < width/2``, 0 outside."""
    return (x.abs() < width / 2).to(x.dtype) / width


def sigmoid_grad(x, alpha=4.0):
    """Derivative of ``sigmoid(alpha x)``: ``alpha sig (1 - sig)``."""
    sig = torch.sigmoid(alpha * x)
    return alpha * sig * (1.0 - sig)


def atan_grad(x, alpha=2.0):
    """Derivative of ``atan(pi/2 alpha x)/pi + 1/2``."""
    return (alpha / 2.0) / (1.0 + (math.pi / 2.0 * alpha * x).square())


def triangle_grad(x, width=1.0):
    """A triangle of half-width ``width`` and area one: peak ``1/width``."""
    return (1.0 - x.abs() / width).clamp_min(0.0) / width


def fast_sigmoid_grad(x, slope=25.0):
    """SuperSpike's fast sigmoid derivative ``1 / (slope |x| + 1)^2``."""
    return 1.0 / (slope * x.abs() + 1.0).square()


def erf_grad(x, alpha=2.0):
    """Derivative of ``erfc(-alpha x) / 2``: a Gaussian of area one."""
    return (alpha / math.sqrt(math.pi)) * torch.exp(-(alpha * x).square())


# --------------------------------------------------------------------------
# Autograd function shared by every surrogate
# --------------------------------------------------------------------------
class SurrogateSpike(torch.autograd.Function):
    """``H(x)`` forward, ``grad * derivative(x)`` backward.

    ``derivative`` is a callable of ``x`` (a surrogate's ``derivative``
    method). Only ``x`` is saved for backward.
    """

    @staticmethod
    def forward(ctx, x, derivative):
        ctx.derivative = derivative
        if x.requires_grad:
            ctx.save_for_backward(x)
        return heaviside(x)

    @staticmethod
    def backward(ctx, grad_out):
        x, = ctx.saved_tensors
        return grad_out * ctx.derivative(x), None


class BaseSurrogate(nn.Module):
    """A spike function: ``forward(x) = H(x)`` with a surrogate backward.

    Subclasses define ``derivative(x)``. The module has no parameters; its
    hyper-parameters are plain floats checked at construction.
    """

    def forward(self, x):
        return SurrogateSpike.apply(x, self.derivative)

    def derivative(self, x):  # pragma: no cover - overridden by each subclass
        raise ConfigError(
            f'{type(self).__name__} does not define a surrogate derivative; '
            'use one of ' + ', '.join(sorted(SURROGATE_SHORTCUTS)))

    @staticmethod
    def _positive(owner, name, value):
        if not isinstance(value, (int, float)) or isinstance(value, bool) \
                or not value > 0 or not math.isfinite(value):
            raise ConfigError(
                f'{owner}: {name} must be a positive finite number, got '
                f'{value!r}')
        return float(value)


@MODELS.register_module()
class RectangleSurrogate(BaseSurrogate):
    """BIDL's default: gradient ``1/width`` where ``|u - theta| < width/2``."""

    def __init__(self, width=1.0):
        super().__init__()
        self.width = self._positive('RectangleSurrogate', 'width', width)

    def derivative(self, x):
        return rectangle_grad(x, self.width)

    def extra_repr(self):
        return f'width={self.width}'


@MODELS.register_module()
class SigmoidSurrogate(BaseSurrogate):
    """SpikingJelly's default: derivative of ``sigmoid(alpha x)``."""

    def __init__(self, alpha=4.0):
        super().__init__()
        self.alpha = self._positive('SigmoidSurrogate', 'alpha', alpha)

    def derivative(self, x):
        return sigmoid_grad(x, self.alpha)

    def extra_repr(self):
        return f'alpha={self.alpha}'


@MODELS.register_module()
class ATanSurrogate(BaseSurrogate):
    """Derivative of ``atan(pi/2 alpha x)/pi + 1/2`` (SpikingJelly ATan)."""

    def __init__(self, alpha=2.0):
        super().__init__()
        self.alpha = self._positive('ATanSurrogate', 'alpha', alpha)

    def derivative(self, x):
        return atan_grad(x, self.alpha)

    def extra_repr(self):
        return f'alpha={self.alpha}'


@MODELS.register_module()
class TriangleSurrogate(BaseSurrogate):
    """Triangle of half-width ``width``, peak ``1/width`` at threshold."""

    def __init__(self, width=1.0):
        super().__init__()
        self.width = self._positive('TriangleSurrogate', 'width', width)

    def derivative(self, x):
        return triangle_grad(x, self.width)

    def extra_repr(self):
        return f'width={self.width}'


@MODELS.register_module()
class FastSigmoidSurrogate(BaseSurrogate):
    """SuperSpike (Zenke & Ganguli 2018): ``1 / (slope |x| + 1)^2``."""

    def __init__(self, slope=25.0):
        super().__init__()
        self.slope = self._positive('FastSigmoidSurrogate', 'slope', slope)

    def derivative(self, x):
        return fast_sigmoid_grad(x, self.slope)

    def extra_repr(self):
        return f'slope={self.slope}'


@MODELS.register_module()
class ErfSurrogate(BaseSurrogate):
    """Gaussian derivative of ``erfc(-alpha x)/2`` (SpikingJelly Erf)."""

    def __init__(self, alpha=2.0):
        super().__init__()
        self.alpha = self._positive('ErfSurrogate', 'alpha', alpha)

    def derivative(self, x):
        return erf_grad(x, self.alpha)

    def extra_repr(self):
        return f'alpha={self.alpha}'


#: String shortcuts accepted wherever a surrogate is configured.
SURROGATE_SHORTCUTS = {
    'rectangle': RectangleSurrogate,
    'sigmoid': SigmoidSurrogate,
    'atan': ATanSurrogate,
    'triangle': TriangleSurrogate,
    'fast_sigmoid': FastSigmoidSurrogate,
    'erf': ErfSurrogate,
}


def build_surrogate(spec, owner='neuron'):
    """Turn ``spec`` into a surrogate module.

    ``spec`` is a shortcut string (``'rectangle'``, ``'sigmoid'``, ``'atan'``,
    ``'triangle'``, ``'fast_sigmoid'``, ``'erf'``) or a registered class name
    (``'SigmoidSurrogate'``), a config dict (``dict(type='sigmoid',
    alpha=2.)`` or ``dict(type='SigmoidSurrogate', alpha=2.)``) or an
    already built :class:`BaseSurrogate`. ``owner`` names the layer in error
    messages.
    """
    if isinstance(spec, BaseSurrogate):
        return spec
    if isinstance(spec, str):
        spec = dict(type=spec)
    if not isinstance(spec, dict) or 'type' not in spec:
        raise ConfigError(
            f'{owner}: surrogate must be a name ({", ".join(SURROGATE_SHORTCUTS)}),'
            f' a dict with a "type" key, or a surrogate module; got {spec!r}')
    cfg = dict(spec)
    kind = cfg.pop('type')
    cls = SURROGATE_SHORTCUTS.get(kind) if isinstance(kind, str) else None
    if cls is None and isinstance(kind, str):
        cls = MODELS.get(kind)
    if cls is None and isinstance(kind, type):
        cls = kind
    if not (isinstance(cls, type) and issubclass(cls, BaseSurrogate)):
        raise ConfigError(
            f'{owner}: unknown surrogate {kind!r}; choose one of '
            f'{", ".join(SURROGATE_SHORTCUTS)} or a registered BaseSurrogate')
    try:
        return cls(**cfg)
    except TypeError as err:
        raise ConfigError(f'{owner}: bad arguments for surrogate {kind!r}: '
                          f'{err}') from err
