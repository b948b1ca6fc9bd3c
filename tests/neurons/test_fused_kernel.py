"""The fused multi-step LIF kernels (compiled C++ and pure PyTorch): finite
differences, a hand-computed gradient, memory, layouts, and the fallback
between them. Their outputs and gradients against the module's own step,
option by option, are tests/neurons/test_lif_parity.py."""
import pytest
import torch

from bidl_train.errors import ConfigError
from bidl_train.neurons import LIF, RectangleSurrogate, lif_multistep
from bidl_train.neurons import lif_cpp
from bidl_train.neurons.functional import select_kernel
from bidl_train.neurons.surrogate import SigmoidSurrogate

CPP = lif_cpp.load_cpp_kernel() is not None
KERNELS = [
    pytest.param('cpp', marks=pytest.mark.skipif(
        not CPP, reason='the C++ kernel does not build on this machine')),
    'torch'
]


def outputs_and_grads(neuron, x, weight):
    x = x.clone().requires_grad_()
    y = neuron(x)
    params = [p for p in neuron.parameters()]
    grads = torch.autograd.grad((y * weight).sum(), [x] + params,
                                allow_unused=True)
    # an unused parameter has gradient zero
    grads = [torch.zeros_like(p) if g is None else g
             for p, g in zip([x] + params, grads)]
    return y, grads


@pytest.mark.parametrize('kernel', KERNELS)
@pytest.mark.parametrize('reset', ['hard', 'soft'])
@pytest.mark.parametrize('memb_mode', [0, 1, 2, 3])
def test_gradcheck_analog_detached_reset(reset, memb_mode, kernel):
    which = kernel
    """Finite differences: with the reset's spike detached and an analog
    output, the map x, alpha, beta, theta, v0 -> y is piecewise smooth and
    the surrogate plays no part, so the kernel's hand-written BPTT must equal
    the numerical Jacobian exactly (away from threshold crossings)."""
    gen = torch.Generator().manual_seed(20 + memb_mode)
    shape = (5, 2, 3)
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    alpha = torch.tensor([0.7, 0.4, 0.9], dtype=torch.float64)
    beta = torch.tensor([0.05, -0.02, 0.0], dtype=torch.float64)
    theta = torch.tensor([0.45, 0.6, 0.3], dtype=torch.float64)
    v0 = torch.tensor([-0.1, 0.0, -0.3], dtype=torch.float64)
    args = [t.requires_grad_() for t in (x, alpha, beta, theta, v0)]
    derivative = RectangleSurrogate().derivative

    def run(x, alpha, beta, theta, v0):
        return lif_multistep(x, alpha, beta, theta, v0, derivative, reset,
                             True, memb_mode, which)

    assert torch.autograd.gradcheck(run, args, eps=1e-7, atol=1e-6)


def test_spike_gradient_by_hand():
    """Two steps, one neuron, rectangle surrogate, hard reset, no detach.

    x = (0.7, 0.1), alpha .3, theta .5: u0 = .7 fires (sg0 = 1), r0 = 0,
    v0' = 0; u1 = .1 (sg1 = 1 since |.1 - .5| < .5), silent.
    L = s0 + s1. dL/dx1 = sg1 = 1.
    dL/du0 = sg0 * (1 + dL/dr0 * dr/ds) + dL/dr0 * (1 - s0),
    dL/dr0 = alpha * dL/du1 = .3, dr/ds = v0 - u0 = -.7:
    dL/dx0 = 1 * (1 + .3 * -.7) + .3 * 0 = 0.79.
    """
    kernels = ['torch'] + (['cpp'] if CPP else [])
    for backend, kernel in [('loop', 'auto')] + [('fused', k)
                                                 for k in kernels]:
        x = torch.tensor([[[0.7]], [[0.1]]], dtype=torch.float64,
                         requires_grad=True)
        LIF(backend=backend, kernel=kernel).double()(x).sum().backward()
        assert x.grad.flatten().tolist() == pytest.approx([0.79, 1.0])


@pytest.mark.parametrize('kernel', KERNELS)
def test_fused_saves_one_tensor_for_backward(kernel):
    """The kernel keeps only u (the input's size) plus the 4 parameters,
    far less than the per-step autograd graph of the loop."""

    def saved_bytes(neuron, x):
        total = []

        def pack(t):
            total.append(t.numel() * t.element_size())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            neuron(x.clone().requires_grad_())
        return sum(total)

    x = torch.rand(8, 4, 32)
    fused = saved_bytes(LIF(backend='fused', kernel=kernel), x)
    loop = saved_bytes(LIF(backend='loop'), x)
    assert fused <= x.numel() * 4 + 4 * 4
    assert loop >= 3 * fused


@pytest.mark.parametrize('kernel', KERNELS)
def test_parameter_only_gradients_and_no_grad(kernel):
    neuron = LIF(learnable=('alpha', 'theta'), backend='fused',
                 kernel=kernel)
    x = torch.rand(6, 2, 5) * 2
    neuron(x).sum().backward()  # x does not require grad
    assert neuron.alpha.grad is not None and neuron.theta.grad is not None
    with torch.no_grad():
        y = neuron(x)
    assert y.grad_fn is None and y.shape == x.shape


def test_auto_backend_choice():
    assert LIF().uses_fused()
    assert not LIF(backend='loop').uses_fused()
    assert LIF(norm_state=True, feature_shape=(3, )).uses_fused()
    noisy = LIF(noise=0.2)
    assert not noisy.train().uses_fused()
    assert noisy.eval().uses_fused()


def test_kernel_refuses_bad_modes():
    x = torch.rand(2, 1, 3)
    one = torch.tensor(0.5)
    with pytest.raises(ConfigError, match='out_mode'):
        lif_multistep(x, one, one, one, one, RectangleSurrogate().derivative,
                      out_mode=5)
    with pytest.raises(ConfigError, match='reset'):
        lif_multistep(x, one, one, one, one, RectangleSurrogate().derivative,
                      reset='none')


# ---------------------------------------------------------------------------
# The compiled kernel and its fallback
# ---------------------------------------------------------------------------
@pytest.mark.skipif(not CPP, reason='the C++ kernel does not build here')
def test_cpp_and_torch_kernels_agree_float32_with_noncontiguous_input():
    torch.manual_seed(14)
    base = torch.randn(6, 8, 3, 10) + 0.4
    x = base.transpose(2, 3)  # [T, B, 10, 3], not contiguous
    weight = torch.randn(x.shape)
    ys, grads = [], []
    for kernel in ('cpp', 'torch'):
        neuron = LIF(feature_shape=(10, 3), param_shape='channel',
                     learnable=True, surrogate='sigmoid', kernel=kernel,
                     backend='fused')
        y, g = outputs_and_grads(neuron, x, weight)
        ys.append(y)
        grads.append(g)
    torch.testing.assert_close(ys[0], ys[1], rtol=0, atol=0)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_environment_variable_forces_pure_pytorch(monkeypatch):
    monkeypatch.setenv(lif_cpp.ENV_VAR, '0')
    assert not lif_cpp.cpp_enabled() and lif_cpp.load_cpp_kernel() is None
    x = torch.rand(4, 2, 3).requires_grad_()
    derivative = RectangleSurrogate().derivative
    assert select_kernel(x, derivative) is None
    y = LIF()(x)
    assert y.grad_fn.name() == 'LIFMultiStepBackward'
    with pytest.raises(ConfigError, match='disabled or did not build'):
        LIF(kernel='cpp')(x)


def test_kernel_choice_falls_back_for_what_cpp_cannot_run():
    derivative = RectangleSurrogate().derivative

    class Custom(SigmoidSurrogate):
        def derivative(self, x):
            return torch.ones_like(x)

    x = torch.rand(3, 2, 4)
    assert lif_cpp.surrogate_code(derivative) == (0, 1.0)
    assert lif_cpp.surrogate_code(SigmoidSurrogate(2.0).derivative) == \
        (1, 2.0)
    assert lif_cpp.surrogate_code(Custom().derivative) is None
    assert lif_cpp.surrogate_code(lambda u: u) is None
    assert select_kernel(x, Custom().derivative) is None
    assert select_kernel(x.half(), derivative) is None
    assert select_kernel(x, derivative, 'torch') is None
    with pytest.raises(ConfigError, match='surrogate'):
        select_kernel(x, Custom().derivative, 'cpp')
    with pytest.raises(ConfigError, match='kernel'):
        select_kernel(x, derivative, 'fastest')
    with pytest.raises(ConfigError, match='kernel'):
        LIF(kernel='fastest')
    # a custom surrogate still trains, on the pure-PyTorch kernel
    neuron = LIF(surrogate=Custom())
    xg = x.clone().requires_grad_()
    neuron(xg).sum().backward()
    assert xg.grad is not None


@pytest.mark.parametrize('error', [
    OSError('no C++ compiler found'),
    RuntimeError('Ninja is required to load C++ extensions'),
    ImportError('torch.utils.cpp_extension unavailable')])
def test_failed_build_warns_and_falls_back(monkeypatch, tmp_path, error):
    """Any build failure is one warning and None, and the layers then run the
    pure-PyTorch kernel with the same numbers."""
    import torch.utils.cpp_extension as cpp_extension

    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(cpp_extension, 'load_inline', broken)
    monkeypatch.setenv('TORCH_EXTENSIONS_DIR', str(tmp_path))
    with pytest.warns(RuntimeWarning, match='pure-PyTorch'):
        assert lif_cpp.build_kernel('bidl_train_lif_cpu_test', '') is None
    # as the cached build would answer after such a failure
    monkeypatch.setattr(lif_cpp, '_cached_build', lambda: None)
    x = torch.rand(5, 2, 3, dtype=torch.float64).requires_grad_()
    y = LIF().double()(x)
    assert y.grad_fn.name() == 'LIFMultiStepBackward'
    torch.testing.assert_close(y, LIF(backend='loop').double()(x))
    with pytest.raises(ConfigError, match='did not build'):
        LIF(kernel='cpp')(x)


def test_build_name_separates_sources_and_environments(monkeypatch):
    first = lif_cpp.build_name('k', 'source one')
    assert first == lif_cpp.build_name('k', 'source one')
    assert first != lif_cpp.build_name('k', 'source two')
    monkeypatch.setattr(lif_cpp.sys, 'prefix', '/another/venv')
    assert first != lif_cpp.build_name('k', 'source one')
    assert first.startswith('k_')


def test_benchmark_reports_floor_and_each_surrogate(capsys):
    """tools/benchmark_neurons.py: a memory-floor row (``y = x * 0.5``)
    with a ``time/floor`` column, and one row per extra surrogate."""
    import importlib.util
    import os.path as osp

    from helpers.paths import REPO
    path = osp.join(REPO, 'tools', 'benchmark_neurons.py')
    spec = importlib.util.spec_from_file_location('benchmark_neurons', path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    threads = torch.get_num_threads()
    try:
        bench.main(['--steps', '2', '--batch', '1', '--channels', '2',
                    '--size', '4', '--net-steps', '0', '--repeats', '1',
                    '--device', 'cpu', '--surrogates', 'sigmoid', 'atan',
                    'erf', '--skip', 'snntorch', 'norse', 'bidl loop'])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    rows = {line.split('  ')[0]: line for line in out.splitlines()}
    assert 'time/floor' in out
    assert 'memory floor' in rows and 'bidl fused [atan]' in rows
    assert 'bidl fused [erf]' in rows and 'bidl fused [sigmoid]' not in rows
    # the floor divided by itself
    assert rows['memory floor'].split()[-2] == '1.000'
