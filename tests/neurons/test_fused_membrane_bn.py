"""The fused LIF kernels with BatchNorm on the membrane (``norm_state``):
outputs, gradients and running statistics against the per-step loop
(``LIF.step`` calling the ``nn.BatchNorm`` module), finite differences
through the batch statistics and the affine weight and bias, the memory
kept for backward, and the dispatch with its log line."""
import copy
import importlib.util
import logging

import pytest
import torch
from mmengine.logging import MMLogger
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.neurons import LIF, RectangleSurrogate, functional, lif_cpp
from bidl_train.neurons.functional import (LIFMultiStepBN, LIFMultiStepBNCpp,
                                           MembraneBN, lif_multistep_bn)
from bidl_train.neurons.surrogate import SigmoidSurrogate, surrogate_code

CPP = lif_cpp.load_cpp_kernel() is not None
HAS_TRITON = importlib.util.find_spec('triton') is not None
if HAS_TRITON:
    # imported before any test sets TRITON_INTERPRET (see test_lif_triton)
    import triton  # noqa: F401
KERNELS = [
    pytest.param('cpp', marks=pytest.mark.skipif(
        not CPP, reason='the C++ kernel does not build on this machine')),
    # on these CPU tensors under Triton's interpreter (see run_triton)
    pytest.param('triton', marks=pytest.mark.skipif(
        not HAS_TRITON, reason='triton is not installed')),
    'torch'
]


@pytest.fixture(autouse=True)
def run_triton(request, monkeypatch):
    """Tests of the Triton kernel run it under Triton's interpreter
    (``TRITON_INTERPRET=1``: the kernels on CPU tensors, with numpy)."""
    params = getattr(request.node, 'callspec', None)
    if params is not None and params.params.get('kernel') == 'triton':
        monkeypatch.setenv('TRITON_INTERPRET', '1')
# per-sample feature shapes: BatchNorm2d over [B, C, H, W], BatchNorm1d
# over [B, C, L] and over [B, N] (one value per sample and feature)
SHAPES = [(3, 4, 5), (3, 6), (5, )]


def make_pair(kernel, feature_shape, dtype=torch.float64, **kwargs):
    """A loop neuron with random BN affine and running statistics, and a
    fused copy of it."""
    gen = torch.Generator().manual_seed(len(feature_shape) + len(kwargs))
    options = dict(norm_state=True, feature_shape=feature_shape,
                   param_shape='channel', learnable=True, alpha=0.6,
                   theta=0.4, v0=-0.1, beta=0.02)
    options.update(kwargs)
    loop = LIF(backend='loop', **options).to(dtype)
    channels = feature_shape[0]
    with torch.no_grad():
        bn = loop.norm
        bn.weight.copy_(torch.rand(channels, generator=gen) + 0.5)
        bn.bias.copy_(torch.rand(channels, generator=gen) * 0.4 - 0.2)
        bn.running_mean.copy_(torch.randn(channels, generator=gen) * 0.1)
        bn.running_var.copy_(torch.rand(channels, generator=gen) + 0.5)
    fused = copy.deepcopy(loop)
    fused.backend, fused.kernel = 'auto', kernel
    assert fused.uses_fused() and not loop.uses_fused()
    return loop, fused


def run_both(loop, fused, x, weight):
    """Outputs, every gradient and the BN buffers of both neurons."""
    results = []
    for neuron in (loop, fused):
        xx = x.clone().requires_grad_()
        y = neuron(xx)
        params = list(neuron.parameters())
        grads = torch.autograd.grad((y * weight).sum(), [xx] + params,
                                    allow_unused=True)  # v0 in soft reset
        grads = [torch.zeros_like(p) if g is None else g
                 for p, g in zip([xx] + params, grads)]
        bn = neuron.norm
        results.append([y.detach(), *grads, bn.running_mean.clone(),
                        bn.running_var.clone(),
                        bn.num_batches_tracked.clone()])
    return results


def assert_same(results, atol=1e-10):
    names = ['y', 'x.grad'] + [n for n, _ in LIF(
        norm_state=True, feature_shape=(1, ),
        learnable=True).named_parameters()] + [
            'running_mean', 'running_var', 'num_batches_tracked']
    for name, a, b in zip(names, *results):
        torch.testing.assert_close(b, a, atol=atol, rtol=1e-9,
                                   msg=lambda m, n=name: f'{n}: {m}')


@pytest.mark.parametrize('kernel', KERNELS)
@pytest.mark.parametrize('feature_shape', SHAPES)
@pytest.mark.parametrize('reset,detach', [('hard', False), ('soft', False),
                                          ('hard', True)])
def test_spikes_gradients_and_running_stats_equal_the_loop(
        kernel, feature_shape, reset, detach):
    """Training mode: per-step batch statistics, surrogate gradients
    through fire and reset, running statistics updated every step."""
    loop, fused = make_pair(kernel, feature_shape, reset=reset,
                            detach_reset=detach, surrogate='sigmoid')
    gen = torch.Generator().manual_seed(7)
    shape = (6, 4) + feature_shape
    x = torch.randn(shape, generator=gen, dtype=torch.float64) + 0.3
    weight = torch.randn(shape, generator=gen, dtype=torch.float64)
    results = run_both(loop, fused, x, weight)
    assert results[0][0].sum() > 0  # some neurons fire
    assert int(results[1][-1]) == 6  # one BN update per step
    assert_same(results)


@pytest.mark.parametrize('kernel', KERNELS)
@pytest.mark.parametrize('memb_mode', [0, 1, 2, 3])
def test_analog_outputs_equal_the_loop(kernel, memb_mode):
    loop, fused = make_pair(kernel, (3, 4, 5), mode='analog',
                            memb_mode=memb_mode, act=None)
    gen = torch.Generator().manual_seed(memb_mode)
    x = torch.randn((5, 3, 3, 4, 5), generator=gen, dtype=torch.float64)
    weight = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    assert_same(run_both(loop, fused, x, weight))


@pytest.mark.parametrize('kernel', KERNELS)
@pytest.mark.parametrize('feature_shape', SHAPES)
def test_eval_mode_uses_running_stats_and_leaves_them(kernel,
                                                      feature_shape):
    loop, fused = make_pair(kernel, feature_shape)
    loop.eval(), fused.eval()
    before = fused.norm.running_mean.clone()
    x = torch.randn((4, 3) + feature_shape, dtype=torch.float64) + 0.4
    weight = torch.randn(x.shape, dtype=torch.float64)
    results = run_both(loop, fused, x, weight)
    assert_same(results)
    assert torch.equal(fused.norm.running_mean, before)
    assert int(fused.norm.num_batches_tracked) == 0


@pytest.mark.parametrize('kernel', KERNELS)
@pytest.mark.parametrize('setting', ['momentum_none', 'no_affine',
                                     'no_running_stats'])
def test_batchnorm_settings(kernel, setting):
    """Cumulative average (momentum None), no affine, and no running
    statistics (batch statistics in eval mode too)."""
    loop, fused = make_pair(kernel, (3, 4, 5), learnable=())
    for neuron in (loop, fused):
        channels = neuron.norm.num_features
        if setting == 'momentum_none':
            neuron.norm.momentum = None
            neuron.norm.num_batches_tracked.fill_(3)
        elif setting == 'no_affine':
            neuron.norm = nn.BatchNorm2d(channels, affine=False).double()
        else:
            neuron.norm = nn.BatchNorm2d(
                channels, track_running_stats=False).double()
            neuron.eval()
    x = torch.randn((4, 3, 3, 4, 5), dtype=torch.float64) + 0.4
    weight = torch.randn(x.shape, dtype=torch.float64)
    results = []
    for neuron in (loop, fused):
        xx = x.clone().requires_grad_()
        y = neuron(xx)
        params = list(neuron.parameters())
        grads = torch.autograd.grad((y * weight).sum(), [xx] + params)
        buffers = [b.clone() for b in neuron.norm.buffers()]
        results.append([y.detach(), *grads, *buffers])
    for a, b in zip(*results):
        torch.testing.assert_close(b, a, atol=1e-10, rtol=1e-9)


@pytest.mark.parametrize('kernel', KERNELS)
def test_float32_equals_the_loop(kernel):
    loop, fused = make_pair(kernel, (3, 4, 5), dtype=torch.float32)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn((6, 4, 3, 4, 5), generator=gen) + 0.3
    weight = torch.randn(x.shape, generator=gen)
    results = run_both(loop, fused, x, weight)
    assert torch.equal(results[0][0], results[1][0])  # the same spikes
    for a, b in zip(*results):
        torch.testing.assert_close(b, a.to(b.dtype), atol=2e-5, rtol=2e-4)


def apply_kernel(kernel, norm, derivative, reset, detach, out_mode):
    """The autograd function itself, with x, alpha, beta, theta, v0,
    weight and bias as arguments (for gradcheck)."""
    def run(x, alpha, beta, theta, v0, weight, bias):
        bn = MembraneBN(norm, x, 'test')
        args = (x, alpha, beta, theta, v0, weight, bias, derivative, reset,
                detach, out_mode, bn)
        if kernel == 'cpp':
            module = lif_cpp.load_cpp_kernel()
            return LIFMultiStepBNCpp.apply(*args, module,
                                           surrogate_code(derivative))
        if kernel == 'triton':
            from bidl_train.neurons.lif_triton import LIFMultiStepBNTriton
            return LIFMultiStepBNTriton.apply(*args,
                                              surrogate_code(derivative))
        return LIFMultiStepBN.apply(*args)
    return run


@pytest.mark.parametrize('kernel', KERNELS)
@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('reset,memb_mode', [('hard', 0), ('soft', 1),
                                             ('hard', 2), ('soft', 3)])
def test_gradcheck(kernel, training, reset, memb_mode):
    """Finite differences in float64 through the batch statistics (training
    mode) or the running ones (eval), the BN weight and bias and every LIF
    parameter: with the reset's spike detached and an analog output the map
    is piecewise smooth, so the hand-written backward must equal the
    numerical Jacobian."""
    gen = torch.Generator().manual_seed(memb_mode + 10 * training)
    norm = nn.BatchNorm2d(2).double().train(training)
    with torch.no_grad():
        norm.running_mean.copy_(torch.tensor([0.1, -0.2]))
        norm.running_var.copy_(torch.tensor([0.7, 1.3]))
    x = torch.randn((4, 3, 2, 2, 2), generator=gen, dtype=torch.float64)
    channel = (2, 1, 1)
    params = [torch.rand(channel, generator=gen, dtype=torch.float64) * 0.5
              + 0.3,  # alpha
              torch.full(channel, 0.05, dtype=torch.float64),  # beta
              torch.tensor(0.5, dtype=torch.float64),  # theta
              torch.tensor(-0.1, dtype=torch.float64),  # v0
              torch.tensor([1.2, 0.8], dtype=torch.float64),  # BN weight
              torch.tensor([0.1, -0.1], dtype=torch.float64)]  # BN bias
    args = [t.requires_grad_() for t in [x] + params]
    run = apply_kernel(kernel, norm, RectangleSurrogate().derivative, reset,
                       True, memb_mode)
    # the Triton kernel runs under the interpreter (numpy, op by op): its
    # Jacobian is checked along random directions (gradcheck's fast mode)
    # rather than entry by entry
    assert torch.autograd.gradcheck(run, args, eps=1e-7, atol=1e-6,
                                    fast_mode=kernel == 'triton')


@pytest.mark.parametrize('kernel', KERNELS)
def test_saves_one_input_sized_tensor(kernel):
    """Kept for backward: one tensor the size of the input (the C++ kernel
    the input itself, the PyTorch one the potentials) plus per-step,
    per-channel statistics and the parameters; the loop keeps several
    input-sized tensors per step."""
    x = torch.randn(8, 4, 3, 6, 6) + 0.3

    def saved(neuron):
        sizes = {}

        def pack(t):
            sizes[t.untyped_storage().data_ptr()] = t.numel()
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            neuron(x.clone().requires_grad_())
        return sorted(sizes.values(), reverse=True)

    loop, fused = make_pair(kernel, (3, 6, 6), dtype=torch.float32)
    kept = saved(fused)
    assert kept[0] == x.numel()
    # mean and invstd per step and channel, BN weight and bias, and the
    # four LIF parameters (at most one value per neuron of one step)
    assert sum(kept[1:]) <= 8 * 3 * 2 + 2 * 3 + 4 * x[0].numel()
    assert sum(saved(loop)) > 3 * x.numel()


def test_log_line_names_the_kernel_and_why(monkeypatch):
    monkeypatch.setattr(functional, '_ANNOUNCED', set())
    logger = MMLogger.get_current_instance()
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger.addHandler(handler)
    try:
        x = torch.rand(3, 2, 3, 4, 4)
        LIF(name='c1.lif', norm_state=True, feature_shape=(3, 4, 4),
            kernel='torch')(x)
        LIF(name='c2.lif', norm_state=True, feature_shape=(3, 4, 4),
            noise=0.1)(x)
        if CPP:
            LIF(name='c3.lif', norm_state=True, feature_shape=(3, 4, 4))(x)
    finally:
        logger.removeHandler(handler)
    lines = [m for m in messages if ': runs the ' in m]
    assert lines[:2] == [
        "c1.lif: runs the pure-PyTorch fused LIF kernel with membrane "
        "BatchNorm (kernel='torch')",
        'c2.lif: runs the per-step loop (training noise: the fused kernel '
        'has none)']
    if CPP:
        assert lines[2] == ("c3.lif: runs the compiled C++ fused LIF kernel "
                            "with membrane BatchNorm (kernel='auto', cpu "
                            "float32 input)")


def test_triton_membrane_bn_refused_on_cpu_without_interpreter(
        monkeypatch):
    """kernel='triton' on CPU tensors without Triton's interpreter is
    refused, saying why."""
    monkeypatch.delenv('TRITON_INTERPRET', raising=False)
    x = torch.rand(3, 2, 3, 4, 4)
    neuron = LIF(name='c4.lif', norm_state=True, feature_shape=(3, 4, 4),
                 kernel='triton')
    with pytest.raises(ConfigError, match="kernel='triton' cannot run: .*("
                       "input is on cpu|triton is not installed)"):
        neuron(x)


@pytest.mark.skipif(not HAS_TRITON, reason='triton is not installed')
def test_auto_picks_the_triton_membrane_bn_kernel_on_a_gpu(monkeypatch):
    """Where Triton is preferred (a GPU; pretended here, with the
    interpreter running the kernels), 'auto' runs the Triton kernel with
    membrane BatchNorm, logs it, and it gives the loop's numbers."""
    monkeypatch.setenv('TRITON_INTERPRET', '1')
    monkeypatch.setattr(functional, '_prefers_triton', lambda x: True)
    lines = []
    monkeypatch.setattr(functional, 'announce_kernel',
                        lambda *line: lines.append(line))  # select_kernel's
    loop, fused = make_pair('auto', (3, 4, 5))
    x = torch.randn((4, 3, 3, 4, 5), dtype=torch.float64) + 0.3
    weight = torch.randn(x.shape, dtype=torch.float64)
    assert_same(run_both(loop, fused, x, weight))
    assert lines[-1][1] == ('Triton fused LIF kernel with membrane '
                            'BatchNorm')


@pytest.mark.parametrize('kernel', KERNELS)
def test_one_value_per_channel_in_training_is_refused(kernel):
    neuron = LIF(name='fc3.lif', norm_state=True, feature_shape=(4, ),
                 kernel=kernel)
    with pytest.raises(ConfigError, match='fc3.lif: .*more than one value '
                       'per channel.*batch of 2'):
        neuron(torch.rand(3, 1, 4))
    neuron.eval()(torch.rand(3, 1, 4))  # running statistics: fine


def test_channel_mismatch_is_refused():
    norm = nn.BatchNorm1d(4)
    one = torch.tensor(0.5)
    with pytest.raises(ConfigError, match='fc9: the membrane BatchNorm has '
                       '4 channels'):
        lif_multistep_bn(torch.rand(3, 2, 5), one, one * 0, one, one * 0,
                         SigmoidSurrogate().derivative, norm, layer='fc9')


def test_cuba_lif_keeps_its_membrane_batchnorm():
    """CubaLIF runs its own multi-step form: with norm_state it must still
    normalise the membrane (its fused path has no BatchNorm)."""
    from bidl_train.neurons.cuba import CubaLIF
    torch.manual_seed(4)
    fused = CubaLIF(norm_state=True, feature_shape=(3, ), mode='analog',
                    act=None)
    loop = copy.deepcopy(fused)
    loop.backend = 'loop'
    x = torch.randn(5, 4, 3) * 3 + 2
    torch.testing.assert_close(fused(x), loop(x))
    # the BatchNorm matters here: without it the output differs
    plain = copy.deepcopy(loop)
    plain.norm = None
    assert not torch.allclose(plain(x), loop(x))
