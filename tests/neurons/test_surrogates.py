"""Surrogate spike functions: Heaviside forward, analytic backward."""
import math

import numpy as np
import pytest
import torch

from bidl_train.errors import ConfigError
from bidl_train.neurons import (LIF, ATanSurrogate, BaseSurrogate,
                                ErfSurrogate, FastSigmoidSurrogate,
                                RectangleSurrogate, SigmoidSurrogate,
                                TriangleSurrogate, build_surrogate)
from bidl_train.registry import MODELS

# Smooth primitives F with F' = surrogate derivative, written independently of
# the library; their central differences give the expected derivative.
PRIMITIVES = {
    'sigmoid': (SigmoidSurrogate(alpha=4.0),
                lambda x: 1.0 / (1.0 + np.exp(-4.0 * x))),
    'sigmoid_a2': (SigmoidSurrogate(alpha=2.0),
                   lambda x: 1.0 / (1.0 + np.exp(-2.0 * x))),
    'atan': (ATanSurrogate(alpha=2.0),
             lambda x: np.arctan(np.pi / 2 * 2.0 * x) / np.pi + 0.5),
    'erf': (ErfSurrogate(alpha=2.0),
            lambda x: np.array([0.5 * math.erfc(-2.0 * v) for v in x])),
    'fast_sigmoid': (FastSigmoidSurrogate(slope=25.0),
                     lambda x: x / (1.0 + 25.0 * np.abs(x))),
}


@pytest.mark.parametrize('name', sorted(PRIMITIVES))
def test_smooth_surrogate_gradient_matches_primitive(name):
    module, primitive = PRIMITIVES[name]
    xs = np.linspace(-1.3, 1.3, 27) + 0.0123  # avoid x == 0 exactly
    x = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    module(x).sum().backward()
    h = 1e-6
    expected = (primitive(xs + h) - primitive(xs - h)) / (2 * h)
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-5,
                               atol=1e-7)


def test_rectangle_gradient_hand_values():
    # width 1: 1/1 inside |x| < 0.5; width 0.5: 2 inside |x| < 0.25
    x = torch.tensor([-0.6, -0.49, 0.0, 0.3, 0.5, 0.7], requires_grad=True)
    RectangleSurrogate()(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    x = torch.tensor([-0.3, -0.2, 0.1, 0.25], requires_grad=True)
    RectangleSurrogate(width=0.5)(x).sum().backward()
    assert x.grad.tolist() == [0.0, 2.0, 2.0, 0.0]


def test_triangle_gradient_hand_values():
    x = torch.tensor([-1.5, -0.5, 0.0, 0.25, 1.0], dtype=torch.float64,
                     requires_grad=True)
    TriangleSurrogate(width=1.0)(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 0.5, 1.0, 0.75, 0.0])
    x = torch.tensor([0.5, 2.5], dtype=torch.float64, requires_grad=True)
    TriangleSurrogate(width=2.0)(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.375, 0.0])


@pytest.mark.parametrize('cls', [
    RectangleSurrogate, SigmoidSurrogate, ATanSurrogate, TriangleSurrogate,
    FastSigmoidSurrogate, ErfSurrogate
])
def test_forward_is_strict_heaviside(cls):
    x = torch.tensor([-1.0, -1e-7, 0.0, 1e-7, 2.0])
    assert cls()(x).tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]


@pytest.mark.parametrize('cls', [
    SigmoidSurrogate, ATanSurrogate, ErfSurrogate, TriangleSurrogate
])
def test_derivative_integrates_to_one(cls):
    x = torch.linspace(-40, 40, 400001, dtype=torch.float64)
    area = torch.trapezoid(cls().derivative(x), x).item()
    # atan's derivative has heavy tails: over [-40, 40] its area is
    # F(40) - F(-40) = (2/pi) atan(pi/2 * alpha * 40) with alpha = 2.
    expected = 2 / math.pi * math.atan(40 * math.pi) if cls is \
        ATanSurrogate else 1.0
    assert area == pytest.approx(expected, abs=1e-4)


def test_backward_equals_derivative_method():
    for cls in (RectangleSurrogate, SigmoidSurrogate, ATanSurrogate,
                TriangleSurrogate, FastSigmoidSurrogate, ErfSurrogate):
        module = cls()
        x = torch.randn(50, dtype=torch.float64, requires_grad=True)
        g = torch.randn(50, dtype=torch.float64)
        module(x).backward(g)
        torch.testing.assert_close(x.grad, g * module.derivative(x.detach()))


def test_build_surrogate_forms():
    assert isinstance(build_surrogate('rectangle'), RectangleSurrogate)
    assert isinstance(build_surrogate('fast_sigmoid'), FastSigmoidSurrogate)
    s = build_surrogate(dict(type='sigmoid', alpha=2.5))
    assert isinstance(s, SigmoidSurrogate) and s.alpha == 2.5
    s = build_surrogate(dict(type='ATanSurrogate', alpha=3.0))
    assert isinstance(s, ATanSurrogate) and s.alpha == 3.0
    module = ErfSurrogate(alpha=1.0)
    assert build_surrogate(module) is module
    assert isinstance(MODELS.build(dict(type='TriangleSurrogate')),
                      TriangleSurrogate)


@pytest.mark.parametrize('spec', [
    'boxcar', dict(type='nope'), dict(alpha=2.0), 3.0,
    dict(type='sigmoid', beta=1.0), dict(type='Linear')
])
def test_build_surrogate_refuses(spec):
    with pytest.raises(ConfigError, match='surrogate'):
        build_surrogate(spec, owner='layer1')


@pytest.mark.parametrize('cls,key', [(RectangleSurrogate, 'width'),
                                     (SigmoidSurrogate, 'alpha'),
                                     (FastSigmoidSurrogate, 'slope')])
@pytest.mark.parametrize('value', [0, -1.0, float('nan'), 'x'])
def test_bad_hyperparameters_refused(cls, key, value):
    with pytest.raises(ConfigError, match=key):
        cls(**{key: value})


# ---------------------------------------------------------------------------
# The surrogate handed to a neuron is the one its backward uses
# ---------------------------------------------------------------------------
EXPECTED_DERIVATIVE = {
    # independent closed forms of g(x), x = u - theta
    'rectangle': lambda x: (np.abs(x) < 0.5) * 1.0,
    'sigmoid': lambda x: 4 * np.exp(-4 * x) / (1 + np.exp(-4 * x))**2,
    'atan': lambda x: 1.0 / (1 + (np.pi * x)**2),
    'triangle': lambda x: np.maximum(0.0, 1 - np.abs(x)),
    'fast_sigmoid': lambda x: 1.0 / (25 * np.abs(x) + 1)**2,
    'erf': lambda x: 2 / np.sqrt(np.pi) * np.exp(-4 * x**2),
}


@pytest.mark.parametrize('name', sorted(EXPECTED_DERIVATIVE))
def test_neuron_uses_given_surrogate(name):
    # One step (T = 1): ds/dx = g(x - theta) exactly. (Every compiled
    # kernel's derivative against the surrogate table: test_lif_parity.py)
    neuron = LIF(surrogate=name, backend='loop').double()
    x = torch.linspace(-0.6, 1.6, 23, dtype=torch.float64).reshape(1, 1, 23)
    x = x.clone().requires_grad_()
    neuron(x).sum().backward()
    expected = EXPECTED_DERIVATIVE[name](x.detach().numpy() - 0.5)
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-9,
                               atol=1e-12)


class _CountingSurrogate(SigmoidSurrogate):

    def __init__(self):
        super().__init__(alpha=4.0)
        self.calls = 0

    def derivative(self, x):
        self.calls += 1
        return super().derivative(x)


@pytest.mark.parametrize('backend', ['loop', 'fused'])
def test_neuron_calls_module_instance(backend):
    surrogate = _CountingSurrogate()
    neuron = LIF(surrogate=surrogate, backend=backend)
    assert neuron.surrogate is surrogate
    x = torch.rand(4, 2, 3, requires_grad=True)
    neuron(x).sum().backward()
    assert surrogate.calls == 4  # one derivative evaluation per step
    assert isinstance(neuron.surrogate, BaseSurrogate)
