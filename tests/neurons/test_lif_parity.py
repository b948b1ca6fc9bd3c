"""Every implementation of BIDL's LIF against ONE reference: the module's own
``step`` composed over time, with autograd.

Implementations: the multi-step loop (``backend='loop'``), the fused kernels
(pure PyTorch, compiled C++ when it builds, Triton under its interpreter
when installed, and on CUDA when present) and the deployed node
(:class:`bidl_train.deploy.nodes.LIFNode`). Every surrogate x hard/soft
reset (with and without ``detach_reset``) x spike/analog output modes x
parameter sharing: outputs, final state (where an implementation returns
it; the kernels' ``v_t`` is their analog mode 3) and the gradients of the
input and of alpha, beta, theta and v0.

The surrogate table (:data:`bidl_train.neurons.surrogate.SURROGATE_TABLE`)
is checked the same way: every kernel's derivative and the closed form
against the autograd derivative of the table's smooth step, on a grid.
"""
import importlib.util
import itertools

import pytest
import torch

from bidl_train.deploy.nodes import LIFNode
from bidl_train.neurons import LIF, lif_cpp, lif_multistep
from bidl_train.neurons.surrogate import (SURROGATE_SHORTCUTS,
                                          SURROGATE_TABLE, Heaviside,
                                          build_surrogate)

CPP = lif_cpp.load_cpp_kernel() is not None
TRITON = importlib.util.find_spec('triton') is not None
CUDA = torch.cuda.is_available()
if TRITON:
    # imported before any test sets TRITON_INTERPRET (see test_lif_triton)
    import triton  # noqa: F401

#: (backend, kernel, device) per implementation of the multi-step form
KERNELS = {
    'loop': ('loop', 'auto', 'cpu'),
    'torch': ('fused', 'torch', 'cpu'),
    'cpp': ('fused', 'cpp', 'cpu'),
    'triton': ('fused', 'triton', 'cpu'),  # Triton's interpreter
    'triton-cuda': ('fused', 'triton', 'cuda'),
}
SKIPS = {
    'cpp': (not CPP, 'the C++ kernel does not build on this machine'),
    'triton': (not TRITON, 'triton is not installed'),
    'triton-cuda': (not (TRITON and CUDA), 'needs CUDA and triton'),
}
SURROGATES = [kind.name for kind in SURROGATE_TABLE] + [
    dict(type='rectangle', width=0.3), dict(type='erf', alpha=0.7)]
OUT_MODES = [('spike', 0), ('analog', 0), ('analog', 1), ('analog', 2),
             ('analog', 3)]
PARAM_SHAPES = ['layer', 'channel', 'neuron']
FEATURES = (3, 2, 2)


def implementation(name):
    skip, why = SKIPS.get(name, (False, ''))
    return pytest.param(name, marks=pytest.mark.skipif(skip, reason=why))


@pytest.fixture
def interpreter(request, monkeypatch):
    """Triton's interpreter for the CPU Triton implementation."""
    if request.node.callspec.params.get('impl') == 'triton':
        monkeypatch.setenv('TRITON_INTERPRET', '1')


def make_lif(options, seed, dtype=torch.float64, device='cpu'):
    """A LIF with every parameter learnable and set at random (firing
    ranges, ``v0 < theta``), the same for every implementation."""
    neuron = LIF(feature_shape=FEATURES, learnable=True, backend='loop',
                 **options).to(dtype)
    gen = torch.Generator().manual_seed(seed)
    ranges = dict(alpha=(0.8, 0.1), beta=(0.1, 0.0), theta=(0.6, 0.3),
                  v0=(-0.2, 0.0))
    with torch.no_grad():
        for name, (scale, offset) in ranges.items():
            p = getattr(neuron, name)
            p.copy_(torch.rand(p.shape, generator=gen, dtype=dtype) * scale +
                    offset)
    return neuron.to(device)


def inputs(seed, dtype=torch.float64, device='cpu'):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(7, 4, *FEATURES, generator=gen, dtype=dtype) * 0.8 + 0.3
    weight = torch.randn(x.shape, generator=gen, dtype=dtype)
    return x.to(device), weight.to(device)


def reference(neuron, x):
    """The module's own ``step`` over time: outputs and final ``v``."""
    state, ys = None, []
    for x_t in x.unbind(0):
        y, state = neuron.step(x_t, state)
        ys.append(y)
    return torch.stack(ys), state['v']


def outputs_and_grads(run, neuron, x, weight):
    """``run(neuron, x) -> y`` and the gradients of x and alpha, beta,
    theta, v0 for the loss ``sum(y * weight)`` (an unused one is 0)."""
    x = x.clone().requires_grad_()
    y = run(neuron, x)
    leaves = [x] + [getattr(neuron, n) for n in ('alpha', 'beta', 'theta',
                                                 'v0')]
    grads = torch.autograd.grad((y * weight).sum(), leaves,
                                allow_unused=True)
    return y, [torch.zeros_like(p) if g is None else g
               for p, g in zip(leaves, grads)]


def twin(neuron, backend, kernel):
    """The same neuron (same parameters) on another backend and kernel."""
    other = LIF(feature_shape=FEATURES, learnable=True, backend=backend,
                kernel=kernel, reset=neuron.reset,
                detach_reset=neuron.detach_reset, mode=neuron.mode,
                memb_mode=neuron.memb_mode, act=None,
                surrogate=neuron.surrogate, param_shape=neuron.param_shape)
    other.to(neuron.alpha)
    other.load_state_dict(neuron.state_dict())
    return other


def sub_runs():
    """Output mode x detach_reset, with the parameter sharing rotating so
    that each sharing meets every mode."""
    for i, ((mode, memb_mode), detach) in enumerate(
            itertools.product(OUT_MODES, (False, True))):
        yield dict(mode=mode, memb_mode=memb_mode, detach_reset=detach,
                   param_shape=PARAM_SHAPES[i % 3])


# ---------------------------------------------------------------------------
# The multi-step implementations: outputs and gradients, float64
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('reset', ['hard', 'soft'])
@pytest.mark.parametrize('surrogate', SURROGATES, ids=str)
@pytest.mark.parametrize('impl', [implementation(k) for k in KERNELS])
def test_multi_step_equals_composed_step(impl, surrogate, reset,
                                         interpreter):
    backend, kernel, device = KERNELS[impl]
    for seed, options in enumerate(sub_runs()):
        options.update(reset=reset, surrogate=surrogate, act=None)
        what = f'{impl} {options}'
        ref = make_lif(options, seed, device=device)
        x, weight = inputs(seed, device=device)
        y_ref, g_ref = outputs_and_grads(lambda n, x: reference(n, x)[0],
                                         ref, x, weight)
        neuron = twin(ref, backend, kernel)
        y, grads = outputs_and_grads(lambda n, x: n(x), neuron, x, weight)
        if impl != 'loop':  # the chosen kernel really ran
            assert y.grad_fn.name().startswith('LIFMultiStep'), what
        # the fused kernels reset with a multiply-add (u + s (v0 - u)):
        # one rounding away from the step's s v0 + (1 - s) u
        torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-12, msg=what)
        for name, a, b in zip(['x', 'alpha', 'beta', 'theta', 'v0'], grads,
                              g_ref):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10,
                                       msg=f'gradient of {name}: {what}')


# ---------------------------------------------------------------------------
# float32, the training dtype: outputs exact, gradients to rounding
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('reset', ['hard', 'soft'])
@pytest.mark.parametrize('impl', [implementation(k) for k in KERNELS])
def test_float32_default_layer(impl, reset, interpreter):
    backend, kernel, device = KERNELS[impl]
    torch.manual_seed(13)
    x = (torch.randn(12, 4, 16, 5, 5) + 0.3).to(device)
    weight = torch.randn(x.shape).to(device)
    for mode, memb_mode in (('spike', 0), ('analog', 3)):
        options = dict(reset=reset, mode=mode, memb_mode=memb_mode,
                       act=None)
        ref = LIF(backend='loop', **options).to(device)
        y_ref = reference(ref, x)[0]
        neuron = LIF(backend=backend, kernel=kernel, **options).to(device)
        xg = x.clone().requires_grad_()
        y = neuron(xg)
        (y * weight).sum().backward()
        xr = x.clone().requires_grad_()
        (reference(ref, xr)[0] * weight).sum().backward()
        # the GPU compiler may fuse alpha r + beta into one multiply-add
        exact = impl != 'triton-cuda'
        torch.testing.assert_close(y, y_ref, rtol=0,
                                   atol=0 if exact else 1e-5)
        torch.testing.assert_close(xg.grad, xr.grad, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# The deployed node: the same step, plain Heaviside spikes, no gradient
# ---------------------------------------------------------------------------
def deployed(neuron):
    """The :class:`LIFNode` of ``neuron``, built as the lowering builds it."""
    return LIFNode(neuron.leak_factor(), neuron.beta, neuron.theta,
                   neuron.v0, neuron.reset, neuron.mode, neuron.memb_mode,
                   neuron.act)


@pytest.mark.parametrize('reset', ['hard', 'soft'])
@pytest.mark.parametrize('mode,memb_mode', OUT_MODES)
@pytest.mark.parametrize('param_shape', PARAM_SHAPES)
def test_deploy_node_equals_composed_step(param_shape, mode, memb_mode,
                                          reset):
    # the node keeps float32 parameters (what the artefacts hold), so the
    # reference runs in float32 too; the surrogate has no forward effect
    options = dict(reset=reset, mode=mode, memb_mode=memb_mode, act='ReLU',
                   param_shape=param_shape)
    neuron = make_lif(options, seed=3, dtype=torch.float32).eval()
    x, _ = inputs(3, dtype=torch.float32)
    with torch.no_grad():
        y_ref, v_ref = reference(neuron, x)
        node = deployed(neuron)
        states, ys = node.init_state(x[0]), []
        for x_t in x.unbind(0):
            y, states, spikes = node.step(x_t, states)
            ys.append(y)
            assert spikes is not None and set(spikes.unique().tolist()) <= \
                {0.0, 1.0}
    assert isinstance(node.surrogate, Heaviside)  # no autograd function
    torch.testing.assert_close(torch.stack(ys), y_ref, rtol=0, atol=0)
    torch.testing.assert_close(states['v'], v_ref, rtol=0, atol=0)


# ---------------------------------------------------------------------------
# The surrogate table: one definition, every kernel held to it
# ---------------------------------------------------------------------------
def test_table_is_consistent():
    assert [kind.code for kind in SURROGATE_TABLE] == list(
        range(len(SURROGATE_TABLE)))
    assert set(SURROGATE_SHORTCUTS) == {k.name for k in SURROGATE_TABLE}
    for kind in SURROGATE_TABLE:
        module = build_surrogate(kind.name)
        assert module.kind is kind
        assert getattr(module, kind.param) == kind.default
        assert lif_cpp.surrogate_code(module.derivative) == (kind.code,
                                                             kind.default)


def grid():
    # off the kinks of rectangle (+-w/2) and triangle (+-w), and off 0
    return torch.linspace(-1.7, 1.7, 341, dtype=torch.float64) + 0.00123


def autograd_derivative(kind, p, x):
    x = x.clone().requires_grad_()
    kind.step(x, p).sum().backward()
    return x.grad


def kernel_derivative(kernel, derivative, x):
    """One step, spike output, threshold 0: ``dL/dx = g(x)`` exactly."""
    x = x.reshape(1, 1, -1).clone().requires_grad_()
    zero = torch.zeros((), dtype=x.dtype)
    params = [torch.tensor(0.5, dtype=x.dtype), zero, zero, zero]
    y = lif_multistep(x, *params, derivative, 'hard', False, 'spike',
                      kernel)
    y.sum().backward()
    return x.grad.flatten()


@pytest.mark.parametrize('impl', ['closed form', 'torch', implementation(
    'cpp'), implementation('triton')])
@pytest.mark.parametrize('kind', SURROGATE_TABLE, ids=lambda k: k.name)
def test_every_kernel_derivative_is_the_table_step_derivative(
        kind, impl, interpreter):
    x = grid()
    for p in (kind.default, kind.default * 0.37):
        expected = autograd_derivative(kind, p, x)
        surrogate = build_surrogate({'type': kind.name, kind.param: p})
        if impl == 'closed form':
            got = surrogate.derivative(x)
        else:
            got = kernel_derivative(impl, surrogate.derivative, x)
        assert got.abs().max() > 0
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12,
                                   msg=f'{kind.name} {kind.param}={p}')
