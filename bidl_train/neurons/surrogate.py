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

:data:`SURROGATE_TABLE` is the one definition of every built-in surrogate:
its kernel code, its hyper-parameter, its smooth step ``S`` (the
"forward sigmoid" whose derivative is the surrogate), the closed form of
``S'`` and the constants the compiled kernels take. The surrogate classes,
:func:`surrogate_code` and the Triton kernel's constants read it; the
compiled kernels (:mod:`~bidl_train.neurons.lif_cpp`,
:mod:`~bidl_train.neurons.lif_triton`) switch on the code, and a
table-driven test holds every kernel's derivative, and the closed form, to
the autograd derivative of ``S`` on a grid.
"""
import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.registry import MODELS

__all__ = [
    'rectangle_grad', 'sigmoid_grad', 'atan_grad', 'triangle_grad',
    'fast_sigmoid_grad', 'erf_grad', 'heaviside', 'Heaviside',
    'SurrogateSpike',
    'BaseSurrogate', 'RectangleSurrogate', 'SigmoidSurrogate', 'ATanSurrogate',
    'TriangleSurrogate', 'FastSigmoidSurrogate', 'ErfSurrogate',
    'SURROGATE_SHORTCUTS', 'SURROGATE_TABLE', 'SurrogateKind',
    'build_surrogate', 'surrogate_code'
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
# The smooth steps S(x) with S' = the surrogate derivative (the definitions)
# --------------------------------------------------------------------------
def rectangle_step(x, width=1.0):
    """A linear ramp from 0 to 1 over ``|x| < width/2``."""
    return (x / width + 0.5).clamp(0.0, 1.0)


def sigmoid_step(x, alpha=4.0):
    return torch.sigmoid(alpha * x)


def atan_step(x, alpha=2.0):
    return torch.atan(math.pi / 2.0 * alpha * x) / math.pi + 0.5


def triangle_step(x, width=1.0):
    """Two parabolas joining 0 (at ``-width``) to 1 (at ``width``)."""
    z = (x / width).clamp(-1.0, 1.0)
    return 0.5 + z - z * z.abs() / 2.0


def fast_sigmoid_step(x, slope=25.0):
    """SuperSpike's fast sigmoid ``x / (1 + slope |x|)`` (not 0 to 1)."""
    return x / (1.0 + slope * x.abs())


def erf_step(x, alpha=2.0):
    return (1.0 + torch.erf(alpha * x)) / 2.0


@dataclass(frozen=True)
class SurrogateKind:
    """One built-in surrogate: everything any implementation needs.

    ``code``: its number in the compiled kernels' switch (its position in
    :data:`SURROGATE_TABLE`). ``param``/``default``: the hyper-parameter's
    name and default. ``step(x, p)``: the smooth step that defines it;
    ``derivative(x, p)``: the closed form of ``step'`` that the PyTorch
    backward evaluates. ``kernel_constants(p)``: the two constants the
    Triton kernel's branch of this code reads, computed in double (the C++
    kernel computes the same ones from ``p`` in its compute type).
    """
    name: str
    code: int
    param: str
    default: float
    step: Callable
    derivative: Callable
    kernel_constants: Callable


#: Every built-in surrogate, in the order of the kernels' codes.
SURROGATE_TABLE = (
    SurrogateKind('rectangle', 0, 'width', 1.0, rectangle_step,
                  rectangle_grad, lambda w: (w, w / 2)),
    SurrogateKind('sigmoid', 1, 'alpha', 4.0, sigmoid_step, sigmoid_grad,
                  lambda a: (a, 0.0)),
    SurrogateKind('atan', 2, 'alpha', 2.0, atan_step, atan_grad,
                  lambda a: (a / 2, math.pi / 2 * a)),
    SurrogateKind('triangle', 3, 'width', 1.0, triangle_step, triangle_grad,
                  lambda w: (w, 0.0)),
    SurrogateKind('fast_sigmoid', 4, 'slope', 25.0, fast_sigmoid_step,
                  fast_sigmoid_grad, lambda k: (k, 0.0)),
    SurrogateKind('erf', 5, 'alpha', 2.0, erf_step, erf_grad,
                  lambda a: (a / math.sqrt(math.pi), a)),
)
_KINDS = {kind.name: kind for kind in SURROGATE_TABLE}


class Heaviside(nn.Module):
    """The spike function at inference: ``H(x)`` in plain ops.

    What every surrogate computes in the forward pass, without the custom
    autograd function (which neither tracing nor ONNX should see);
    deployment puts it in place of a neuron's surrogate.
    """

    def forward(self, x):
        return heaviside(x)


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

    A built-in subclass names its :data:`SURROGATE_TABLE` entry as
    ``kind``; its hyper-parameter is a plain float attribute (``width``,
    ``alpha`` or ``slope``) checked at construction, and ``derivative`` is
    the entry's closed form. Another subclass defines ``derivative(x)``
    itself (and runs on the pure-PyTorch kernel). No parameters.
    """

    #: the :class:`SurrogateKind` of a built-in surrogate
    kind = None

    def __init__(self, value=None):
        super().__init__()
        if self.kind is not None:
            value = self.kind.default if value is None else value
            setattr(self, self.kind.param, self._positive(
                type(self).__name__, self.kind.param, value))

    def forward(self, x):
        return SurrogateSpike.apply(x, self.derivative)

    def derivative(self, x):
        if self.kind is None:
            raise ConfigError(
                f'{type(self).__name__} does not define a surrogate '
                'derivative; use one of ' +
                ', '.join(sorted(SURROGATE_SHORTCUTS)))
        return self.kind.derivative(x, self.value())

    def value(self):
        """The hyper-parameter of a built-in surrogate."""
        return getattr(self, self.kind.param)

    @staticmethod
    def _positive(owner, name, value):
        if not isinstance(value, (int, float)) or isinstance(value, bool) \
                or not value > 0 or not math.isfinite(value):
            raise ConfigError(
                f'{owner}: {name} must be a positive finite number, got '
                f'{value!r}')
        return float(value)

    def extra_repr(self):
        if self.kind is None:
            return ''
        return f'{self.kind.param}={self.value()}'


@MODELS.register_module()
class RectangleSurrogate(BaseSurrogate):
    """BIDL's default: gradient ``1/width`` where ``|u - theta| < width/2``."""

    kind = _KINDS['rectangle']

    def __init__(self, width=1.0):
        super().__init__(width)


@MODELS.register_module()
class SigmoidSurrogate(BaseSurrogate):
    """SpikingJelly's default: derivative of ``sigmoid(alpha x)``."""

    kind = _KINDS['sigmoid']

    def __init__(self, alpha=4.0):
        super().__init__(alpha)


@MODELS.register_module()
class ATanSurrogate(BaseSurrogate):
    """Derivative of ``atan(pi/2 alpha x)/pi + 1/2`` (SpikingJelly ATan)."""

    kind = _KINDS['atan']

    def __init__(self, alpha=2.0):
        super().__init__(alpha)


@MODELS.register_module()
class TriangleSurrogate(BaseSurrogate):
    """Triangle of half-width ``width``, peak ``1/width`` at threshold."""

    kind = _KINDS['triangle']

    def __init__(self, width=1.0):
        super().__init__(width)


@MODELS.register_module()
class FastSigmoidSurrogate(BaseSurrogate):
    """SuperSpike (Zenke & Ganguli 2018): ``1 / (slope |x| + 1)^2``."""

    kind = _KINDS['fast_sigmoid']

    def __init__(self, slope=25.0):
        super().__init__(slope)


@MODELS.register_module()
class ErfSurrogate(BaseSurrogate):
    """Gaussian derivative of ``erfc(-alpha x)/2`` (SpikingJelly Erf)."""

    kind = _KINDS['erf']

    def __init__(self, alpha=2.0):
        super().__init__(alpha)


def surrogate_code(derivative):
    """``(code, parameter)`` of a built-in surrogate's ``derivative``.

    ``None`` for anything else (a plain function, a subclass overriding
    ``derivative``): the compiled kernels cannot evaluate it.
    """
    owner = getattr(derivative, '__self__', None)
    if not isinstance(owner, BaseSurrogate) or owner.kind is None or \
            getattr(derivative, '__func__', None) is not \
            BaseSurrogate.derivative:
        return None
    return owner.kind.code, owner.value()


#: String shortcuts accepted wherever a surrogate is configured.
SURROGATE_SHORTCUTS = {
    cls.kind.name: cls
    for cls in (RectangleSurrogate, SigmoidSurrogate, ATanSurrogate,
                TriangleSurrogate, FastSigmoidSurrogate, ErfSurrogate)
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
