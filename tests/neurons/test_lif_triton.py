"""The Triton LIF kernel: half precision, finite differences, the layer on
it, memory, its automatic choice and its fallback. Its outputs and gradients
against the module's own step, for every option and surrogate, are
tests/neurons/test_lif_parity.py.

Without a GPU the kernels run under Triton's interpreter (TRITON_INTERPRET=1,
which Triton reads when a kernel is decorated; lif_triton decorates once per
setting, so monkeypatching the variable is enough). With CUDA every numerics
test also runs on real CUDA tensors with the compiled kernels. The tests that
simulate a missing Triton run whether or not it is installed.
"""
import importlib.util
import subprocess
import sys
import warnings

import pytest
import torch

from bidl_train.errors import ConfigError
from bidl_train.neurons import LIF, lif_multistep
from bidl_train.neurons import functional
from bidl_train.neurons.functional import select_kernel
from bidl_train.neurons.surrogate import RectangleSurrogate, SigmoidSurrogate

HAS_TRITON = importlib.util.find_spec('triton') is not None
if HAS_TRITON:
    # Imported now, before any test sets TRITON_INTERPRET, as other
    # libraries (SpikingJelly) import it: triton.language's own jit helpers
    # are then compiled-mode functions, and the kernels must not need them
    # under the interpreter.
    import triton  # noqa: F401
needs_triton = pytest.mark.skipif(
    not HAS_TRITON,
    reason='triton is not installed (pip install --no-deps triton==3.9.0)')
CUDA = torch.cuda.is_available()
DEVICES = ['interpreter'] + (['cuda'] if CUDA else [])


@pytest.fixture(params=DEVICES)
def device(request, monkeypatch):
    """'cpu' with Triton's interpreter on, or 'cuda' with it off."""
    if request.param == 'interpreter':
        monkeypatch.setenv('TRITON_INTERPRET', '1')
        return 'cpu'
    monkeypatch.delenv('TRITON_INTERPRET', raising=False)
    return 'cuda'


@pytest.fixture
def interpreter(monkeypatch):
    monkeypatch.setenv('TRITON_INTERPRET', '1')


@pytest.fixture
def fresh_choice():
    """Forget the cached Triton import and self-test before and after."""
    functional.load_triton_kernel.cache_clear()
    functional._triton_self_test.cache_clear()
    yield
    functional.load_triton_kernel.cache_clear()
    functional._triton_self_test.cache_clear()


def make_params(shape, gen, dtype, device):
    """alpha, beta, theta, v0 of ``shape`` in ranges where neurons fire
    and reset (v0 < theta), each requiring a gradient."""
    def rand(scale, offset):
        return torch.rand(shape, generator=gen, dtype=dtype) * scale + offset
    params = [rand(0.8, 0.1), rand(0.1, 0.0), rand(0.6, 0.3), rand(0.2, -0.2)]
    return [p.to(device).requires_grad_() for p in params]


def run(kernel, x, params, weight, derivative, reset='hard',
        detach_reset=False, out_mode='spike'):
    """Output and gradients of x and the four parameters."""
    x = x.detach().clone().requires_grad_()
    leaves = [x] + [p.detach().clone().requires_grad_() for p in params]
    y = lif_multistep(*leaves, derivative, reset, detach_reset, out_mode,
                      kernel)
    grads = torch.autograd.grad((y * weight).sum(), leaves)
    return y, grads


# ---------------------------------------------------------------------------
# Numerics beyond the parity table: half precision, finite differences
# ---------------------------------------------------------------------------
@needs_triton
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('out_mode', ['spike', 3])
def test_half_precision_inputs_compute_in_float32(dtype, out_mode, device):
    """Half inputs are widened to float32 inside the kernel: the results are
    the float32 kernel's on the same (widened) input, rounded once."""
    gen = torch.Generator().manual_seed(5)
    params = make_params((3, 1, 1), gen, torch.float32, device)
    x = (torch.randn(6, 2, 3, 2, 2, generator=gen) + 0.3).to(dtype)
    weight = torch.randn(x.shape, generator=gen).to(dtype)
    x, weight = x.to(device), weight.to(device)
    derivative = SigmoidSurrogate().derivative
    y, grads = run('triton', x, params, weight, derivative,
                   out_mode=out_mode)
    y32, grads32 = run('torch', x.float(), params, weight.float(),
                       derivative, out_mode=out_mode)
    assert y.dtype == grads[0].dtype == dtype
    assert grads[1].dtype == torch.float32  # the parameter's own dtype
    tol = dict(atol=1e-2, rtol=1e-2) if dtype == torch.bfloat16 else \
        dict(atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(y, y32.to(dtype), **tol)
    torch.testing.assert_close(grads[0], grads32[0].to(dtype), **tol)
    for a, b in zip(grads[1:], grads32[1:]):
        torch.testing.assert_close(a, b, atol=1e-2, rtol=1e-3)


@needs_triton
@pytest.mark.parametrize('reset', ['hard', 'soft'])
@pytest.mark.parametrize('out_mode', [0, 1, 2, 3])
def test_gradcheck_float64(reset, out_mode, device):
    """Finite differences in float64: with the reset's spike detached and an
    analog output, the map is piecewise smooth and the surrogate plays no
    part, so the hand-written BPTT must equal the numerical Jacobian."""
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(5, 2, 3, generator=gen, dtype=torch.float64)
    params = [torch.tensor(v, dtype=torch.float64)
              for v in ([0.7, 0.4, 0.9], [0.05, -0.02, 0.0],
                        [0.45, 0.6, 0.3], [-0.1, 0.0, -0.3])]
    args = [t.to(device).requires_grad_() for t in [x] + params]
    derivative = RectangleSurrogate().derivative

    def fn(x, alpha, beta, theta, v0):
        return lif_multistep(x, alpha, beta, theta, v0, derivative, reset,
                             True, out_mode, 'triton')

    # under the (slow) interpreter, fast mode: random projections of the
    # Jacobian, a few kernel runs instead of one per input element
    assert torch.autograd.gradcheck(fn, args, eps=1e-7, atol=1e-6,
                                    fast_mode=device == 'cpu')


# ---------------------------------------------------------------------------
# The LIF layer on the Triton kernel
# ---------------------------------------------------------------------------
@needs_triton
def test_lif_layer_with_triton_kernel_matches_loop(device):
    torch.manual_seed(7)
    options = dict(feature_shape=(4, 5), param_shape='neuron',
                   learnable=True, surrogate='atan', reset='soft')
    fused = LIF(backend='fused', kernel='triton', **options).to(device)
    loop = LIF(backend='loop', **options).to(device)
    with torch.no_grad():
        fused.alpha.uniform_(0.2, 0.9)
        fused.theta.uniform_(0.3, 0.8)
    loop.load_state_dict(fused.state_dict())
    base = torch.randn(6, 3, 5, 4, device=device)
    x = base.transpose(2, 3)  # [T, B, 4, 5], not contiguous
    outputs = []
    for neuron in (fused, loop):
        xg = x.clone().requires_grad_()
        y = neuron(xg)
        (y * torch.arange(y.numel(), device=device).view(y.shape).sin()
         ).sum().backward()
        # the loop leaves v0 unused under a soft reset: its gradient is None
        outputs.append([y, xg.grad] + [
            torch.zeros_like(p) if p.grad is None else p.grad
            for p in neuron.parameters()])
    assert outputs[0][0].grad_fn.name() == 'LIFMultiStepTritonBackward'
    assert "kernel='triton'" in repr(fused)
    for a, b in zip(*outputs):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@needs_triton
@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
def test_membrane_batchnorm_layer_matches_loop(device, training, dtype):
    """The Triton kernel with membrane BatchNorm (norm_state) on the device:
    outputs, every gradient (LIF parameters, BN weight and bias, input) and
    the BN running statistics equal the per-step loop's (the module's own
    BatchNorm called every step); the spikes are identical."""
    torch.manual_seed(3)
    options = dict(feature_shape=(3, 4, 5), param_shape='channel',
                   learnable=True, surrogate='sigmoid', norm_state=True,
                   alpha=0.6, theta=0.4, v0=-0.1)
    fused = LIF(backend='fused', kernel='triton', **options).to(device,
                                                                 dtype)
    loop = LIF(backend='loop', **options).to(device, dtype)
    with torch.no_grad():
        fused.norm.weight.uniform_(0.5, 1.5)
        fused.norm.bias.uniform_(-0.2, 0.2)
        fused.norm.running_var.uniform_(0.5, 1.5)
    loop.load_state_dict(fused.state_dict())
    fused.train(training), loop.train(training)
    x = torch.randn(6, 4, 3, 4, 5, device=device, dtype=dtype) + 0.3
    outputs = []
    for neuron in (fused, loop):
        xg = x.clone().requires_grad_()
        y = neuron(xg)
        (y * torch.arange(y.numel(), device=device).view(y.shape).sin()
         ).sum().backward()
        outputs.append([y, xg.grad] + [
            torch.zeros_like(p) if p.grad is None else p.grad
            for p in neuron.parameters()] + [
                neuron.norm.running_mean, neuron.norm.running_var])
    assert outputs[0][0].grad_fn.name() == 'LIFMultiStepBNTritonBackward'
    assert torch.equal(outputs[0][0], outputs[1][0])  # the same spikes
    tol = 1e-9 if dtype == torch.float64 else 2e-4
    for a, b in zip(*outputs):
        torch.testing.assert_close(a, b, atol=tol, rtol=tol)


@needs_triton
def test_saves_only_input_and_parameters(device):
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    x = torch.rand(8, 4, 32, device=device).requires_grad_()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        LIF(backend='fused', kernel='triton').to(device)(x)
    assert sum(saved) <= x.numel() * 4 + 4 * 4


@needs_triton
def test_parameter_only_gradients_no_grad_and_empty_input(device):
    neuron = LIF(learnable=('alpha', 'v0'), backend='fused',
                 kernel='triton').to(device)
    x = torch.rand(6, 2, 5, device=device) * 2
    neuron(x).sum().backward()  # x does not require grad
    reference = LIF(learnable=('alpha', 'v0'), backend='loop').to(device)
    reference(x).sum().backward()
    for a, b in zip(neuron.parameters(), reference.parameters()):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        y = neuron(x)
    assert y.grad_fn is None and y.shape == x.shape
    # no neuron (the layer), no time step (the layer refuses it; the kernel
    # answers zero gradients)
    empty = torch.rand(4, 0, 5, device=device).requires_grad_()
    y = neuron(empty)
    y.sum().backward()
    assert y.shape == empty.shape and empty.grad.shape == empty.shape
    params = [torch.full((5, ), 0.5, device=device, requires_grad=True)
              for _ in range(4)]
    no_steps = torch.rand(0, 2, 5, device=device, requires_grad=True)
    y = lif_multistep(no_steps, *params, RectangleSurrogate().derivative,
                      kernel='triton')
    grads = torch.autograd.grad(y.sum(), [no_steps] + params,
                                allow_unused=True)
    assert y.shape == no_steps.shape and grads[0].shape == no_steps.shape
    assert all(g is not None and (g == 0).all() for g in grads[1:])


# ---------------------------------------------------------------------------
# Choosing the kernel
# ---------------------------------------------------------------------------
def kernel_name(choice):
    return 'torch' if choice is None else choice[0].__name__


@pytest.fixture
def fake_gpu(monkeypatch):
    """Make kernel='auto' treat every tensor as a CUDA one."""
    monkeypatch.setattr(functional, '_prefers_triton', lambda x: True)


@needs_triton
def test_auto_never_picks_triton_for_cpu_tensors(interpreter, fresh_choice):
    x = torch.rand(3, 2, 4)
    derivative = RectangleSurrogate().derivative
    assert kernel_name(select_kernel(x, derivative)) in ('LIFMultiStepCpp',
                                                          'torch')
    assert kernel_name(select_kernel(x.half(), derivative)) == 'torch'
    assert not functional._prefers_triton(x)
    assert functional._prefers_triton(torch.empty(0, device='meta')) is False


@needs_triton
def test_auto_picks_triton_on_a_gpu(interpreter, fake_gpu, fresh_choice,
                                    monkeypatch):
    x = torch.rand(3, 2, 4)
    derivative = RectangleSurrogate().derivative
    for dtype in (torch.float16, torch.bfloat16, torch.float32,
                  torch.float64):
        assert kernel_name(select_kernel(x.to(dtype), derivative)) == \
            'LIFMultiStepTriton'
    y = LIF()(x.clone().requires_grad_())
    assert y.grad_fn.name() == 'LIFMultiStepTritonBackward'

    # options it does not cover, or switched off: pure PyTorch
    class Custom(SigmoidSurrogate):
        def derivative(self, x):
            return torch.ones_like(x)

    assert select_kernel(x, Custom().derivative) is None
    assert select_kernel(x, derivative, 'torch') is None
    monkeypatch.setenv(functional.TRITON_ENV_VAR, '0')
    assert select_kernel(x, derivative) is None
    assert LIF()(x.requires_grad_()).grad_fn.name() == 'LIFMultiStepBackward'


@needs_triton
def test_forced_triton_says_why_it_cannot_run(monkeypatch, fresh_choice):
    monkeypatch.delenv('TRITON_INTERPRET', raising=False)
    x = torch.rand(3, 2, 4)
    derivative = RectangleSurrogate().derivative
    with pytest.raises(ConfigError, match='TRITON_INTERPRET=1'):
        select_kernel(x, derivative, 'triton')
    monkeypatch.setenv('TRITON_INTERPRET', '1')
    with pytest.raises(ConfigError, match='built-in'):
        select_kernel(x, lambda u: u, 'triton')
    with pytest.raises(ConfigError, match='dtype torch.int32'):
        select_kernel(x.int(), derivative, 'triton')
    monkeypatch.setenv(functional.TRITON_ENV_VAR, 'off')
    with pytest.raises(ConfigError, match='disabled by '
                       'BIDL_TRAIN_TRITON_KERNEL=0'):
        LIF(kernel='triton')(x)
    with pytest.raises(ConfigError, match="'triton'"):
        LIF(kernel='Triton')


@needs_triton
def test_failed_self_test_warns_once_and_falls_back(interpreter, fake_gpu,
                                                    fresh_choice,
                                                    monkeypatch):
    """A GPU where Triton's kernels do not compile or launch (too old, no
    toolchain): kernel='auto' warns once and runs pure PyTorch."""
    from bidl_train.neurons import lif_triton

    def broken(*args, **kwargs):
        raise RuntimeError('no kernel image for this architecture')

    monkeypatch.setattr(lif_triton, 'launch_forward', broken)
    x = torch.rand(4, 2, 3, requires_grad=True)
    with pytest.warns(RuntimeWarning, match='no kernel image'):
        y = LIF()(x)
    assert y.grad_fn.name() == 'LIFMultiStepBackward'
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # no second warning
        assert select_kernel(x, RectangleSurrogate().derivative) is None
    torch.testing.assert_close(y, LIF(backend='loop')(x))


def test_missing_triton_falls_back(fake_gpu, fresh_choice, monkeypatch):
    """Runs whether or not triton is installed: with its import failing,
    'auto' runs pure PyTorch and 'triton' says it is not installed."""
    import bidl_train.neurons as neurons
    monkeypatch.setitem(sys.modules, 'triton', None)  # import -> ImportError
    monkeypatch.delitem(sys.modules, 'bidl_train.neurons.lif_triton',
                        raising=False)
    monkeypatch.delattr(neurons, 'lif_triton', raising=False)
    module, why = functional.load_triton_kernel()
    assert module is None and 'not installed' in why
    x = torch.rand(4, 2, 3, requires_grad=True)
    assert select_kernel(x, RectangleSurrogate().derivative) is None
    y = LIF()(x)
    assert y.grad_fn.name() == 'LIFMultiStepBackward'
    y.sum().backward()
    with pytest.raises(ConfigError, match='triton is not installed'):
        LIF(kernel='triton')(x)


def test_import_failure_of_another_kind_warns_and_falls_back(
        fake_gpu, fresh_choice, monkeypatch):
    import builtins
    import bidl_train.neurons as neurons
    real_import = builtins.__import__

    def failing(name, *args, **kwargs):
        if name == 'triton' or name.startswith('triton.'):
            raise RuntimeError('0 active drivers')
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, '__import__', failing)
    monkeypatch.delitem(sys.modules, 'bidl_train.neurons.lif_triton',
                        raising=False)
    monkeypatch.delattr(neurons, 'lif_triton', raising=False)
    with pytest.warns(RuntimeWarning, match='0 active drivers'):
        assert select_kernel(torch.rand(2, 1, 3),
                             RectangleSurrogate().derivative) is None


def test_importing_bidl_train_does_not_import_triton():
    """A fresh interpreter: importing the package (layers, models, neurons)
    leaves triton alone, and with triton unimportable the LIF layers train."""
    code = (
        'import sys\n'
        'import bidl_train, bidl_train.neurons, bidl_train.layers\n'
        'import bidl_train.models\n'
        'assert "triton" not in sys.modules, "triton imported eagerly"\n'
        'sys.modules["triton"] = None\n'
        'import torch\n'
        'x = torch.rand(5, 2, 3, requires_grad=True)\n'
        'bidl_train.neurons.LIF()(x).sum().backward()\n'
        'assert x.grad is not None\n')
    subprocess.run([sys.executable, '-c', code], check=True, timeout=120)


@pytest.mark.skipif(not (CUDA and HAS_TRITON),
                    reason='needs a CUDA device and triton')
def test_auto_uses_triton_on_real_cuda(monkeypatch, fresh_choice):
    monkeypatch.delenv('TRITON_INTERPRET', raising=False)
    x = torch.rand(4, 2, 3, device='cuda', requires_grad=True)
    assert LIF().cuda()(x).grad_fn.name() == 'LIFMultiStepTritonBackward'
