"""LIF against a plain numpy loop of BIDL's equations, option by option."""
import copy

import numpy as np
import pytest
import torch

from bidl_train.errors import ConfigError
from bidl_train.neurons import IF, LIF, PLIF, BaseNeuron
from bidl_train.registry import MODELS


def reference_lif(x, alpha=0.3, beta=0.0, theta=0.5, v0=0.0, reset='hard',
                  mode='spike', memb_mode=0, relu=False):
    """Element-by-element loop of the DESIGN.md equations (numpy)."""
    x = np.asarray(x, dtype=np.float64)
    shape = x.shape[1:]
    alpha, beta, theta, v0 = (np.broadcast_to(np.asarray(p, np.float64),
                                              shape)
                              for p in (alpha, beta, theta, v0))
    out = np.zeros_like(x)
    for idx in np.ndindex(*shape):
        v = 0.0
        for t in range(x.shape[0]):
            u = x[(t, ) + idx] + v
            s = 1.0 if u > theta[idx] else 0.0
            if reset == 'hard':
                r = v0[idx] if s else u
            else:
                r = u - theta[idx] if s else u
            v = alpha[idx] * r + beta[idx]
            if mode == 'spike':
                y = s
            else:
                y = [u, u - theta[idx], r, v][memb_mode]
                if relu:
                    y = max(y, 0.0)
            out[(t, ) + idx] = y
    return out


def run_steps(neuron, x_seq):
    state, ys = None, []
    for x_t in x_seq:
        y, state = neuron.step(x_t, state)
        ys.append(y)
    return torch.stack(ys)


# ---------------------------------------------------------------------------
# Hand-computed examples
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('backend', ['loop', 'fused'])
def test_three_step_hand_example(backend):
    # defaults alpha .3, theta .5, hard reset to 0
    # column 0: u = .6 (fire, v = 0), u = .2 (v = .06), u = .76 (fire)
    # column 1: u = .3 (v = .09), u = .39 (v = .117), u = .417: silent
    x = torch.tensor([[[0.6, 0.3]], [[0.2, 0.3]], [[0.7, 0.3]]])
    y = LIF(backend=backend)(x)
    assert y[:, 0, 0].tolist() == [1.0, 0.0, 1.0]
    assert y[:, 0, 1].tolist() == [0.0, 0.0, 0.0]
    # membrane u (analog mode 0, no activation)
    u = LIF(mode='analog', memb_mode=0, act=None, backend=backend)(x)
    np.testing.assert_allclose(u[:, 0, 0], [0.6, 0.2, 0.76], rtol=1e-6)
    np.testing.assert_allclose(u[:, 0, 1], [0.3, 0.39, 0.417], rtol=1e-6)


@pytest.mark.parametrize('backend', ['loop', 'fused'])
def test_soft_reset_and_beta_hand_example(backend):
    # soft reset: u = .9 fires, r = .4, v = .12; u = .12, v = .036; u = .036
    x = torch.tensor([0.9, 0.0, 0.0]).reshape(3, 1, 1)
    u = LIF(reset='soft', mode='analog', memb_mode=0, act=None,
            backend=backend)(x)
    np.testing.assert_allclose(u.flatten(), [0.9, 0.12, 0.036], rtol=1e-6)
    # beta .1, hard: u=.6 fires, v=.1; u=.3, v=.19; u=.89 fires, v=.1
    x = torch.tensor([0.6, 0.2, 0.7]).reshape(3, 1, 1)
    v = LIF(beta=0.1, mode='analog', memb_mode=3, act=None,
            backend=backend)(x)
    np.testing.assert_allclose(v.flatten(), [0.1, 0.19, 0.1], rtol=1e-6)


def test_threshold_is_strict():
    x = torch.full((1, 1, 1), 0.5)
    assert LIF()(x).item() == 0.0
    assert LIF()(x + 1e-6).item() == 1.0


# ---------------------------------------------------------------------------
# Every option against the reference loop
# ---------------------------------------------------------------------------
# The fused kernels and the deployed node are held to this module's step,
# option by option, in tests/neurons/test_lif_parity.py: here the step itself (the
# loop backend) meets the independent numpy loop.
@pytest.mark.parametrize('reset', ['hard', 'soft'])
@pytest.mark.parametrize('detach_reset', [False, True])
@pytest.mark.parametrize('mode,memb_mode', [('spike', 0), ('analog', 0),
                                            ('analog', 1), ('analog', 2),
                                            ('analog', 3)])
def test_matches_reference(reset, detach_reset, mode, memb_mode):
    torch.manual_seed(0)
    x = torch.randn(7, 3, 5) * 0.8 + 0.3
    kw = dict(alpha=0.6, beta=0.05, theta=0.4,
              v0=-0.2 if reset == 'hard' else 0.0)
    neuron = LIF(reset=reset, detach_reset=detach_reset, mode=mode,
                 memb_mode=memb_mode, act='ReLU', backend='loop', **kw)
    expected = reference_lif(x.numpy(), reset=reset, mode=mode,
                             memb_mode=memb_mode, relu=mode == 'analog',
                             **kw)
    np.testing.assert_allclose(neuron(x).numpy(), expected, atol=1e-6)


@pytest.mark.parametrize('param_shape', ['layer', 'channel', 'neuron'])
def test_parameter_sharing(param_shape):
    torch.manual_seed(1)
    feature_shape = (3, 2, 2)
    x = torch.rand(6, 2, *feature_shape) * 1.2
    neuron = LIF(feature_shape=feature_shape, param_shape=param_shape,
                 learnable=('alpha', 'theta'), backend='loop')
    shape = {'layer': (), 'channel': (3, 1, 1), 'neuron': feature_shape}
    assert tuple(neuron.alpha.shape) == shape[param_shape]
    assert isinstance(neuron.alpha, torch.nn.Parameter)
    assert isinstance(neuron.theta, torch.nn.Parameter)
    assert not isinstance(neuron.beta, torch.nn.Parameter)
    assert 'beta' in dict(neuron.named_buffers())
    with torch.no_grad():
        neuron.alpha.copy_(torch.rand(shape[param_shape]) * 0.9)
        neuron.theta.copy_(torch.rand(shape[param_shape]) * 0.5 + 0.2)
    expected = reference_lif(x.numpy(), alpha=neuron.alpha.detach().numpy(),
                             theta=neuron.theta.detach().numpy())
    np.testing.assert_allclose(neuron(x).detach().numpy(), expected,
                               atol=1e-6)


def test_tensor_parameter_values_and_learnable_true():
    theta = torch.tensor([0.2, 0.4, 0.9])
    neuron = LIF(theta=theta, feature_shape=(3, ), param_shape='channel',
                 learnable=True)
    assert {n for n, _ in neuron.named_parameters()} == {
        'alpha', 'beta', 'theta', 'v0'}
    x = torch.full((2, 1, 3), 0.5)
    assert neuron(x)[0, 0].tolist() == [1.0, 1.0, 0.0]


def test_norm_state_is_batchnorm_on_membrane():
    torch.manual_seed(2)
    neuron = LIF(norm_state=True, feature_shape=(4, ), mode='analog',
                 memb_mode=0, act=None).eval()
    bn = neuron.norm
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
        bn.running_var.copy_(torch.tensor([1.5, 0.5, 2.0, 1.0]))
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5, 1.0]))
        bn.bias.copy_(torch.tensor([0.0, 0.1, -0.1, 0.2]))
    x = torch.randn(5, 3, 4)
    mean, var = bn.running_mean.numpy(), bn.running_var.numpy()
    w, b = bn.weight.detach().numpy(), bn.bias.detach().numpy()
    expected = np.zeros(x.shape)
    v = np.zeros((3, 4))
    for t in range(5):
        u = x[t].numpy() + v
        u = (u - mean) / np.sqrt(var + bn.eps) * w + b
        expected[t] = u
        s = u > 0.5
        v = 0.3 * np.where(s, 0.0, u)
    np.testing.assert_allclose(neuron(x).detach().numpy(), expected,
                               atol=1e-5)
    assert neuron.uses_fused()  # the fused kernel with membrane BatchNorm


def test_noise_only_in_training():
    x = torch.rand(4, 8, 16)
    neuron = LIF(noise=0.5, mode='analog', memb_mode=0, act=None)
    neuron.eval()
    np.testing.assert_allclose(
        neuron(x).numpy(),
        reference_lif(x.numpy(), mode='analog', memb_mode=0), atol=1e-6)
    neuron.train()
    torch.manual_seed(0)
    noisy = neuron(x)
    assert not torch.allclose(noisy, neuron.eval()(x))
    # the noise is scaled by the membrane's spread: a constant membrane
    # (std 0) gets none
    const = torch.full((3, 2, 16), 0.2)
    neuron.train()
    np.testing.assert_allclose(
        neuron(const).numpy(),
        reference_lif(const.numpy(), mode='analog', memb_mode=0), atol=1e-6)


# ---------------------------------------------------------------------------
# State never leaks; both forms agree
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('backend', ['loop', 'fused'])
def test_no_state_leaks_between_calls_or_samples(backend):
    torch.manual_seed(3)
    neuron = LIF(backend=backend, mode='analog', memb_mode=3, act=None)
    x = torch.rand(6, 4, 10)
    first = neuron(x)
    neuron(torch.rand(6, 4, 10) * 5)  # a different batch in between
    torch.testing.assert_close(neuron(x), first)
    for b in range(4):
        torch.testing.assert_close(neuron(x[:, b:b + 1]), first[:, b:b + 1])
    assert not [n for n, _ in neuron.named_buffers() if n not in
                ('alpha', 'beta', 'theta', 'v0')]


def test_multi_step_equals_single_step_with_norm_state():
    # the membrane BatchNorm, in eval and training mode, sees the same
    # inputs in both forms (the fused kernels against the step, option by
    # option, are tests/neurons/test_lif_parity.py)
    torch.manual_seed(4)
    neuron = LIF(norm_state=True, feature_shape=(3, 4))
    x = torch.randn(8, 2, 3, 4)
    for train in (False, True):
        neuron.train(train)
        twin = copy.deepcopy(neuron)  # BN running stats advance per call
        torch.testing.assert_close(neuron(x), run_steps(twin, x), atol=1e-6,
                                   rtol=0)


def test_multi_step_equals_single_step_with_noise():
    neuron = LIF(noise=0.3, feature_shape=(6, 5, 5), param_shape='channel')
    x = torch.rand(5, 2, 6, 5, 5)
    torch.manual_seed(7)
    multi = neuron(x)
    torch.manual_seed(7)
    single = run_steps(neuron, x)
    torch.testing.assert_close(multi, single, atol=1e-6, rtol=0)


def test_step_with_explicit_state():
    neuron = LIF(mode='analog', memb_mode=3, act=None)
    x = torch.tensor([[0.3]])
    state = neuron.init_state(x)
    assert state['v'].shape == x.shape and state['v'].abs().sum() == 0
    y, state = neuron.step(x, {'v': torch.tensor([[0.1]])})
    # u = .4, silent, v = .3 * .4
    assert y.item() == pytest.approx(0.12)
    assert state['v'].item() == pytest.approx(0.12)
    assert LIF.state_names == ('v', )


def test_registered_and_is_base_neuron():
    neuron = MODELS.build(dict(type='LIF', alpha=0.5, surrogate='sigmoid'))
    assert isinstance(neuron, LIF) and isinstance(neuron, BaseNeuron)
    assert neuron.alpha.item() == 0.5


# ---------------------------------------------------------------------------
# Refused configurations
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('kwargs,word', [
    (dict(alpha=1.5), 'alpha'),
    (dict(alpha=-0.1), 'alpha'),
    (dict(theta=0.0), 'theta'),
    (dict(theta=-1.0, reset='soft'), 'theta'),
    (dict(v0=0.5), 'v0'),
    (dict(reset='zero'), 'reset'),
    (dict(mode='rate'), 'mode'),
    (dict(memb_mode=4), 'memb_mode'),
    (dict(memb_mode=True), 'memb_mode'),
    (dict(noise=-0.1), 'noise'),
    (dict(param_shape='channel'), 'feature_shape'),
    (dict(param_shape='neuron', feature_shape=(3, None, None)),
     'feature_shape'),
    (dict(param_shape='pixel'), 'param_shape'),
    (dict(learnable=('tau', )), 'learnable'),
    (dict(surrogate='box'), 'surrogate'),
    (dict(norm_state=True), 'norm_state'),
    (dict(backend='cuda'), 'backend'),
    (dict(mode='analog', act='NoSuchAct'), 'activation'),
    (dict(alpha=torch.ones(3), feature_shape=(4, ), param_shape='channel'),
     'alpha'),
    (dict(beta=float('nan')), 'beta'),
])
def test_refused_parameters(kwargs, word):
    with pytest.raises(ConfigError, match=word):
        LIF(name='layer3.lif', **kwargs)


def test_error_names_the_layer_and_bad_input():
    with pytest.raises(ConfigError, match='layer3.lif'):
        LIF(alpha=2.0, name='layer3.lif')
    neuron = LIF(feature_shape=(4, ), name='fc1.neuron')
    with pytest.raises(ConfigError, match='fc1.neuron'):
        neuron(torch.rand(3, 2, 5))
    with pytest.raises(ConfigError, match='T, B'):
        LIF()(torch.rand(5))


def test_fused_backend_refuses_training_noise():
    neuron = LIF(noise=0.1, backend='fused')
    neuron.eval()
    neuron(torch.rand(2, 1, 3))  # fine: no noise in eval mode
    neuron.train()
    with pytest.raises(ConfigError, match='noise'):
        neuron(torch.rand(2, 1, 3))


# ---------------------------------------------------------------------------
# SpikingJelly equivalence (optional dependency)
# ---------------------------------------------------------------------------
def test_equals_spikingjelly_lifnode():
    sj_neuron = pytest.importorskip('spikingjelly.activation_based.neuron')
    sj_surrogate = pytest.importorskip(
        'spikingjelly.activation_based.surrogate')
    torch.manual_seed(5)
    tau = 2.0  # alpha = 0.5: both leak forms round identically
    x = (torch.rand(12, 3, 20, dtype=torch.float64) * 1.2).requires_grad_()
    x_sj = x.detach().clone().requires_grad_()
    ours = LIF(alpha=1 - 1 / tau, beta=0.0, v0=0.0, theta=1.0, reset='hard',
               surrogate=dict(type='sigmoid', alpha=4.0)).double()
    theirs = sj_neuron.LIFNode(
        tau=tau, decay_input=False, v_threshold=1.0, v_reset=0.0,
        detach_reset=False, step_mode='m',
        surrogate_function=sj_surrogate.Sigmoid(alpha=4.0))
    y_ours, y_sj = ours(x), theirs(x_sj)
    torch.testing.assert_close(y_ours, y_sj, rtol=0, atol=0)
    g = torch.randn_like(y_ours)
    y_ours.backward(g)
    y_sj.backward(g)
    torch.testing.assert_close(x.grad, x_sj.grad, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------
# IF and PLIF (leak variants of the same equations)
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('backend', ['loop', 'fused'])
def test_if_never_leaks(backend):
    # x = .2 each step, theta .5: u = .2, .4, .6 (fire, reset 0), .2
    x = torch.full((4, 1, 1), 0.2)
    y = MODELS.build(dict(type='IF', backend=backend))(x)
    assert y.flatten().tolist() == [0.0, 0.0, 1.0, 0.0]
    torch.manual_seed(8)
    x = torch.rand(9, 3, 4) * 0.6
    neuron = IF(reset='soft', backend=backend, mode='analog', memb_mode=3,
                act=None)
    np.testing.assert_allclose(
        neuron(x).numpy(),
        reference_lif(x.numpy(), alpha=1.0, reset='soft', mode='analog',
                      memb_mode=3), atol=1e-6)


@pytest.mark.parametrize('kwargs', [dict(alpha=0.5), dict(learnable=True),
                                    dict(learnable=('alpha', ))])
def test_if_refuses_a_leak(kwargs):
    with pytest.raises(ConfigError, match='IF'):
        IF(**kwargs)


@pytest.mark.parametrize('backend', ['loop', 'fused'])
def test_plif_leak_is_sigmoid_of_learned_weight(backend):
    torch.manual_seed(9)
    neuron = PLIF(tau=3.0, backend=backend)
    assert neuron.leak_factor().item() == pytest.approx(2.0 / 3.0)
    assert [n for n, _ in neuron.named_parameters()] == ['w']
    x = torch.rand(8, 2, 5) * 1.2
    np.testing.assert_allclose(
        neuron(x).detach().numpy(),
        reference_lif(x.numpy(), alpha=2.0 / 3.0), atol=1e-6)
    # chain rule: dL/dw = dL/dalpha * alpha (1 - alpha), alpha from LIF
    lif = LIF(alpha=2.0 / 3.0, learnable=('alpha', ), backend=backend,
              mode='analog', memb_mode=3, act=None)
    plif = PLIF(tau=3.0, backend=backend, mode='analog', memb_mode=3,
                act=None)
    lif(x).sum().backward()
    plif(x).sum().backward()
    a = 2.0 / 3.0
    assert plif.w.grad.item() == pytest.approx(
        lif.alpha.grad.item() * a * (1 - a), rel=1e-5)


def test_plif_per_channel_and_refusals():
    neuron = PLIF(tau=4.0, feature_shape=(3, 2, 2), param_shape='channel')
    assert neuron.w.shape == (3, 1, 1)
    x = torch.rand(4, 2, 3, 2, 2)
    torch.testing.assert_close(neuron(x), run_steps(neuron, x), atol=1e-6,
                               rtol=0)
    with pytest.raises(ConfigError, match='tau'):
        PLIF(tau=1.0)
    with pytest.raises(ConfigError, match='alpha'):
        PLIF(alpha=0.5)
