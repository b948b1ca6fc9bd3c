"""ALIF, CubaLIF, Izhikevich and LIFPlus against hand-computed examples and
independent loops."""
import math

import numpy as np
import pytest
import torch

from bidl_train.errors import ConfigError
from bidl_train.neurons import (ALIF, IZHIKEVICH_PRESETS, LIF, CubaLIF,
                                Izhikevich, LIFPlus)
from bidl_train.registry import MODELS


def run_steps(neuron, x_seq):
    state, ys = None, []
    for x_t in x_seq:
        y, state = neuron.step(x_t, state)
        ys.append(y)
    return torch.stack(ys)


def seq(*values):
    """A [T, 1, 1] float64 sequence."""
    return torch.tensor(values, dtype=torch.float64).reshape(-1, 1, 1)


def analog(cls, **kwargs):
    """The membrane u as output (analog mode 0, no activation)."""
    return cls(mode='analog', memb_mode=0, act=None, **kwargs).double()


def both_forms_agree(neuron, x, tol=1e-6):
    torch.testing.assert_close(neuron(x), run_steps(neuron, x), rtol=0,
                               atol=tol)


# ---------------------------------------------------------------------------
# ALIF
# ---------------------------------------------------------------------------
def test_alif_hand_example():
    # alpha .3, theta0 .5, beta_a 1, rho .5, hard reset, x = .6 each step
    # t0: u .6 > .5 fires, v 0, a = .5*0 + .5*1 = .5
    # t1: thr = .5 + .5 = 1; u .6 silent, v .18, a .25
    # t2: thr .75; u .78 fires, a = .125 + .5 = .625
    x = seq(0.6, 0.6, 0.6)
    alif = ALIF(rho=0.5, beta_a=1.0).double()
    assert alif(x).flatten().tolist() == [1.0, 0.0, 1.0]
    margin = ALIF(rho=0.5, beta_a=1.0, mode='analog', memb_mode=1,
                  act=None).double()(x)
    np.testing.assert_allclose(margin.flatten(), [0.1, -0.4, 0.03],
                               atol=1e-6)
    # the same input on a plain LIF fires at t1 too
    assert LIF().double()(x).flatten().tolist() == [1.0, 1.0, 1.0]


def reference_alif(x, alpha, theta, rho, beta_a, reset):
    x = np.asarray(x, np.float64)
    out = np.zeros_like(x)
    for idx in np.ndindex(*x.shape[1:]):
        v = a = 0.0
        for t in range(x.shape[0]):
            u = x[(t, ) + idx] + v
            thr = theta + beta_a * a
            s = 1.0 if u > thr else 0.0
            r = (0.0 if s else u) if reset == 'hard' else u - s * thr
            v = alpha * r
            a = rho * a + (1 - rho) * s
            out[(t, ) + idx] = s
    return out


@pytest.mark.parametrize('reset', ['hard', 'soft'])
def test_alif_matches_loop_and_both_forms(reset):
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(20, 3, 4, generator=gen, dtype=torch.float64) * 1.2
    alif = ALIF(alpha=0.6, theta=0.4, rho=0.8, beta_a=0.5,
                reset=reset).double()
    expected = reference_alif(x.numpy(), 0.6, 0.4, 0.8, 0.5, reset)
    np.testing.assert_array_equal(alif(x).numpy(), expected)
    both_forms_agree(alif, x)
    # adaptation lowers the spike count against the same LIF
    assert alif(x).sum() < LIF(alpha=0.6, theta=0.4, reset=reset)(
        x.float()).sum()


def test_alif_gradients_and_refusals():
    alif = ALIF(learnable=('rho', 'beta_a', 'theta'), feature_shape=(4, ),
                param_shape='channel')
    x = (torch.rand(8, 2, 4) * 1.5).requires_grad_()
    alif(x).sum().backward()
    assert x.grad.abs().sum() > 0 and alif.beta_a.grad.abs().sum() > 0
    assert alif.state_names == ('v', 'a')
    for kwargs, word in [(dict(rho=1.5), 'rho'), (dict(beta_a=-1), 'beta_a'),
                         (dict(theta=0.0), 'theta'),
                         (dict(backend='fused'), 'fused')]:
        with pytest.raises(ConfigError, match=word):
            ALIF(**kwargs)


# ---------------------------------------------------------------------------
# CubaLIF
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('backend', ['loop', 'fused'])
def test_cubalif_hand_example(backend):
    # alpha_syn .5, alpha .3, theta .5; x = (.4, .3, 0)
    # i = .4, .2 + .3 = .5, .25;  u = .4 (v .12), .62 fires (v 0), .25
    x = seq(0.4, 0.3, 0.0)
    neuron = CubaLIF(alpha_syn=0.5, backend=backend).double()
    assert neuron(x).flatten().tolist() == [0.0, 1.0, 0.0]
    u = analog(CubaLIF, alpha_syn=0.5, backend=backend)(x)
    np.testing.assert_allclose(u.flatten(), [0.4, 0.62, 0.25], atol=1e-6)
    # a plain LIF never fires on the same input
    assert LIF().double()(x).sum() == 0


@pytest.mark.parametrize('options', [dict(), dict(reset='soft'),
                                     dict(mode='analog', memb_mode=3)])
def test_cubalif_forms_and_fused_equal_loop(options):
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(12, 2, 3, 4, generator=gen, dtype=torch.float64)
    fused = CubaLIF(alpha_syn=0.7, backend='fused', learnable=True,
                    **options).double()
    loop = CubaLIF(alpha_syn=0.7, backend='loop', learnable=True,
                   **options).double()
    both_forms_agree(fused, x)
    xf, xl = x.clone().requires_grad_(), x.clone().requires_grad_()
    yf, yl = fused(xf), loop(xl)
    torch.testing.assert_close(yf, yl, rtol=0, atol=1e-6)
    yf.sum().backward()
    yl.sum().backward()
    torch.testing.assert_close(xf.grad, xl.grad)
    torch.testing.assert_close(fused.alpha_syn.grad, loop.alpha_syn.grad)


def test_cubalif_alpha_syn_zero_is_lif_and_refusals():
    x = torch.rand(10, 3, 5)
    torch.testing.assert_close(CubaLIF(alpha_syn=0.0)(x), LIF()(x))
    assert CubaLIF().state_names == ('i', 'v')
    with pytest.raises(ConfigError, match='alpha_syn'):
        CubaLIF(alpha_syn=1.2)


# ---------------------------------------------------------------------------
# Izhikevich
# ---------------------------------------------------------------------------
def numpy_izhikevich(a, b, c, d, current, dt, steps):
    """Independent scalar loop of the paper's equations (Euler step dt)."""
    v, u, spikes = -65.0, b * -65.0, []
    for t in range(steps):
        v_new = v + dt * (0.04 * v * v + 5 * v + 140 - u + current)
        u_new = u + dt * a * (b * v - u)
        if v_new >= 30:
            spikes.append(t)
            v, u = c, u_new + d
        else:
            v, u = v_new, u_new
    return np.array(spikes)


def izhikevich_spike_times(preset, current=10.0, dt=0.5, steps=2000):
    neuron = Izhikevich(preset=preset, dt=dt).double()
    x = torch.full((steps, 1, 1), current, dtype=torch.float64)
    with torch.no_grad():
        s = neuron(x).flatten().numpy()
    return np.flatnonzero(s)


@pytest.mark.parametrize('preset', sorted(IZHIKEVICH_PRESETS))
def test_izhikevich_spike_times_match_numpy(preset):
    times = izhikevich_spike_times(preset, current=10.0)
    # the module stores its parameters in float32: feed the loop the same
    params = [float(np.float32(p)) for p in IZHIKEVICH_PRESETS[preset]]
    expected = numpy_izhikevich(*params, 10.0, 0.5, 2000)
    np.testing.assert_array_equal(times, expected)
    assert len(times) > 5


def isis(preset):
    return np.diff(izhikevich_spike_times(preset)) * 0.5  # ms


def test_izhikevich_presets_published_behaviour():
    rs, ib, ch = isis('RS'), isis('IB'), isis('CH')
    fs, lts = isis('FS'), isis('LTS')
    # RS: tonic spiking that adapts: the first interval is the shortest and
    # the train settles to a regular rhythm
    assert rs[0] < rs[-1] and np.ptp(rs[-10:]) <= 1.0
    # IB: an initial burst (short intervals) then tonic spikes far apart
    assert ib[0] < 10 and ib[-1] > 3 * ib[0] and np.ptp(ib[-10:]) <= 1.0
    # CH: repetitive bursts: intervals are either short (within a burst) or
    # long (between bursts), several of each
    short, long_ = ch[ch < 10], ch[ch > 30]
    assert len(short) + len(long_) == len(ch)
    assert len(long_) >= 5 and len(short) >= 3 * len(long_)
    # FS: high rate without much adaptation; faster than RS
    assert fs[-1] < 2 * fs[0] and len(fs) > 3 * len(rs)
    # LTS: high-frequency start with strong adaptation
    assert lts[0] < 5 and lts[-1] > 2.5 * lts[0] and len(lts) > len(rs)


def test_izhikevich_forms_state_and_refusals():
    neuron = Izhikevich('CH', dt=0.25)
    x = torch.rand(40, 2, 3) * 20
    both_forms_agree(neuron, x, tol=0)
    state = neuron.init_state(x[0])
    assert torch.all(state['v'] == -65) and torch.allclose(
        state['u'], torch.full_like(x[0], -13.0))
    assert MODELS.build(dict(type='Izhikevich', preset='FS')).a.item() == \
        pytest.approx(0.1)
    custom = Izhikevich(a=0.03, d=6.0)
    assert custom.a.item() == pytest.approx(0.03) and custom.c.item() == -65
    for kwargs, word in [(dict(preset='XX'), 'preset'), (dict(dt=2.0), 'dt'),
                         (dict(a=0.0), 'a '), (dict(d=-1.0), 'd '),
                         (dict(c=40.0), 'c '), (dict(v_init=35.0), 'v_init')]:
        with pytest.raises(ConfigError, match=word):
            Izhikevich(**kwargs)


def test_izhikevich_fires_at_exactly_peak_and_gradients():
    # b = 0 keeps u at exactly 0; from rest v = -65 the step is
    # v' = -65 + dt*(169 - 325 + 140 - 0 + x), which is 30 exactly at x = 111
    # with dt = 1: the paper's rule v >= 30 fires, a strict > would not
    neuron = Izhikevich(dt=1.0, b=0.0).double()
    y, state = neuron.step(torch.tensor([[111.0]], dtype=torch.float64))
    assert y.item() == 1.0 and state['v'].item() == -65.0
    y, _ = neuron.step(torch.tensor([[110.5]], dtype=torch.float64))
    assert y.item() == 0.0
    x = torch.full((30, 2, 1), 12.0, requires_grad=True)
    Izhikevich(learnable=True)(x).sum().backward()
    assert torch.isfinite(x.grad).all()


# ---------------------------------------------------------------------------
# LIFPlus: one hand-computed example per switch
# ---------------------------------------------------------------------------
def u_and_s(x, **kwargs):
    # these examples are our re-derivation; BIDL's formulation is held in
    # tests/configs/test_bidl_fidelity.py
    kwargs.setdefault('formulation', 'accumulating')
    u = analog(LIFPlus, **kwargs)(x).flatten().tolist()  # membrane u
    s = LIFPlus(**kwargs).double()(x).flatten().tolist()
    return u, s


def test_lifplus_all_off_is_bidl_lif():
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(10, 2, 5, generator=gen, dtype=torch.float64)
    ours = dict(formulation='accumulating')
    torch.testing.assert_close(LIFPlus(**ours).double()(x),
                               LIF().double()(x))
    for memb_mode in (0, 1, 2, 3):
        plus = LIFPlus(mode='analog', memb_mode=memb_mode, act=None,
                       **ours).double()
        lif = LIF(mode='analog', memb_mode=memb_mode, act=None).double()
        torch.testing.assert_close(plus(x), lif(x))


def test_lifplus_cobe():
    # g = .4, .2 + .4 = .6, .3; u = .4 (v .12), .72 fires (v 0), .3
    u, s = u_and_s(seq(0.4, 0.4, 0.0), input_accum='COBE', epsilon=0.5)
    np.testing.assert_allclose(u, [0.4, 0.72, 0.3], atol=1e-6)
    assert s == [0.0, 1.0, 0.0]


def test_lifplus_coba():
    # eps .5, theta 5 (silent): y = 1, .5, .25;
    # g0 = e/2; g1 = g0/2 + e/4; g2 = g1/2 + e/8; v = .3 u
    e = math.e
    g0 = e / 2
    g1 = g0 / 2 + e * 0.5 * 0.5
    g2 = g1 / 2 + e * 0.5 * 0.25
    u0 = g0
    u1 = 0.3 * u0 + g1
    u2 = 0.3 * u1 + g2
    u, s = u_and_s(seq(1.0, 0.0, 0.0), input_accum='COBA', epsilon=0.5,
                   theta=5.0)
    np.testing.assert_allclose(u, [u0, u1, u2], atol=1e-6)
    assert s == [0.0, 0.0, 0.0]


def test_lifplus_reversal_voltage():
    # COBE eps .5, v_g 2, theta 5: g = 1 -> I = 1*(2 - 0) = 2, u = 2, v = .6
    # g = 1.5 -> I = 1.5*(2 - .6) = 2.1, u = 2.7
    u, _ = u_and_s(seq(1.0, 1.0), input_accum='COBE', rev_volt=True,
                   epsilon=0.5, v_g=2.0, theta=5.0)
    np.testing.assert_allclose(u, [2.0, 2.7], atol=1e-6)
    with pytest.raises(ConfigError, match='rev_volt'):
        LIFPlus(rev_volt=True)


def test_lifplus_absolute_refractory():
    # 2 blocked steps after each spike: fire, blocked, blocked, fire, blocked
    u, s = u_and_s(seq(0.6, 0.6, 0.6, 0.6, 0.6), refractory='AR',
                   refractory_steps=2)
    assert s == [1.0, 0.0, 0.0, 1.0, 0.0]
    np.testing.assert_allclose(u, [0.6, 0.0, 0.0, 0.6, 0.0], atol=1e-6)


def test_lifplus_relative_refractory():
    # eps_r .5, v_rr -1, q_r .5: t0 u .6 fires, q = .5
    # t1 q = .25, u = 0 + .6 + .25*(-1 - 0) = .35, v = .105
    # t2 q = .125, u = .105 + .6 + .125*(-1 - .105) = .566875 fires
    u, s = u_and_s(seq(0.6, 0.6, 0.6), refractory='RR', epsilon_r=0.5,
                   v_rr=-1.0, q_r=0.5)
    np.testing.assert_allclose(u, [0.6, 0.35, 0.566875], atol=1e-6)
    assert s == [1.0, 0.0, 1.0]


def test_lifplus_spike_triggered_adaptation():
    # eps_w .5, b .4: t0 u .6 fires, w = .4; t1 w .2, u = .4 (v .12);
    # t2 w .1, u = .12 + .6 - .1 = .62 fires
    u, s = u_and_s(seq(0.6, 0.6, 0.6), adaptation='ADT', epsilon_w=0.5,
                   b=0.4)
    np.testing.assert_allclose(u, [0.6, 0.4, 0.62], atol=1e-6)
    assert s == [1.0, 0.0, 1.0]


def test_lifplus_subthreshold_current():
    # a 1, tau_recip .5, v_w 0, eps_w .5: t0 w 0, u .4, v .12
    # t1 w = .5*1*.12 = .06, u = .12 + .4 - .06 = .46, v = .138
    # t2 w = .03 + .5*.138 = .099, u = .138 + .4 - .099 = .439
    u, s = u_and_s(seq(0.4, 0.4, 0.4), adaptation='SBT', a=1.0,
                   tau_recip=0.5, v_w=0.0, epsilon_w=0.5, b=0.4)
    np.testing.assert_allclose(u, [0.4, 0.46, 0.439], atol=1e-6)
    assert s == [0.0, 0.0, 0.0]


def test_lifplus_exponential_initiation():
    # rheobase theta .5, delta_t .1, tau .5, cut-off v_theta 1
    n0 = 0.5 * 0.1 * math.exp((0.0 - 0.5) / 0.1)
    u0 = 0.5 + n0
    v1 = 0.3 * u0
    u1 = v1 + 0.5 + 0.5 * 0.1 * math.exp((v1 - 0.5) / 0.1)
    u, s = u_and_s(seq(0.5, 0.5), spike_init='EXI', theta=0.5, delta_t=0.1,
                   tau_recip=0.5, v_theta=1.0)
    np.testing.assert_allclose(u, [u0, u1], atol=1e-6)
    assert s == [0.0, 0.0]  # below the cut-off v_theta = 1 (not theta)


def test_lifplus_quadratic_initiation():
    # v_0 0, v_c .5, tau .5, v_theta 1: t0 u .8 (silent below 1), v .24
    # t1 N = .5*.24*(.24 - .5) = -.0312, u = .24 + .8 - .0312 = 1.0088 fires
    u, s = u_and_s(seq(0.8, 0.8), spike_init='QDI', v_c=0.5, tau_recip=0.5,
                   v_theta=1.0)
    np.testing.assert_allclose(u, [0.8, 1.0088], atol=1e-6)
    assert s == [0.0, 1.0]


def test_lifplus_exponential_decay():
    # tau .5 towards v_0 = 0: u .4 (v = .4, no alpha leak), u = .4 + .4 - .2
    # = .6 fires (v 0), u .4
    u, s = u_and_s(seq(0.4, 0.4, 0.4), decay='EXD', tau_recip=0.5)
    np.testing.assert_allclose(u, [0.4, 0.6, 0.4], atol=1e-6)
    assert s == [0.0, 1.0, 0.0]


def test_lifplus_linear_decay():
    # v_leak .05: u = .3 - .05 = .25 (v .25), u = .25 + .31 - .05 = .51 fires
    u, s = u_and_s(seq(0.3, 0.31), decay='LID', v_leak=0.05)
    np.testing.assert_allclose(u, [0.25, 0.51], atol=1e-6)
    assert s == [0.0, 1.0]


ALL_ON = dict(input_accum='COBA', rev_volt=True, refractory='RR',
              spike_init='EXI', adaptation='SBT', decay='EXD')


@pytest.mark.parametrize('formulation', ['bidl', 'accumulating'])
@pytest.mark.parametrize('switches', [
    ALL_ON,
    dict(input_accum=1, refractory=1, spike_init=2, adaptation=1, decay=2,
         refractory_steps=3),
])
def test_lifplus_forms_gradients_and_sharing(switches, formulation):
    gen = torch.Generator().manual_seed(4)
    # BIDL's EXD sets v_t from the exponential initiation and the reversal
    # current with no leak: inputs up to 2 make it diverge (as BIDL's does)
    scale = 0.5 if formulation == 'bidl' else 2.0
    x = torch.rand(15, 2, 3, generator=gen, dtype=torch.float64) * scale
    neuron = LIFPlus(feature_shape=(3, ), param_shape='neuron',
                     learnable=True, formulation=formulation,
                     **switches).double()
    both_forms_agree(neuron, x)
    xg = x.clone().requires_grad_()
    neuron(xg).sum().backward()
    assert torch.isfinite(xg.grad).all()
    assert all(p.shape == (3, ) for p in neuron.parameters())
    assert set(neuron.state_names) <= {'v', 'g', 'y', 'cnt', 'q', 'w'}


def test_lifplus_registered_and_refusals():
    built = MODELS.build(dict(type='LIFPlus', input_accum='cobe'))
    assert built.input_accum == 'COBE' and built.state_names == ('v', 'g')
    for kwargs, word in [
            (dict(input_accum='XYZ'), 'input_accum'),
            (dict(decay=7), 'decay'),
            (dict(input_accum='COBE', epsilon=0.0), 'epsilon'),
            (dict(decay='EXD', tau_recip=1.5), 'tau_recip'),
            (dict(alpha=2.0), 'alpha'),
            (dict(refractory='RR', q_r=-1.0), 'q_r'),
            (dict(adaptation='ADT', b=-0.1), 'b'),
            (dict(spike_init='EXI', delta_t=0.0), 'delta_t'),
            (dict(spike_init='QDI', v_c=2.0), 'v_c'),
            (dict(theta=-0.5), 'theta'),
            (dict(decay='LID', v_leak=-1.0), 'v_leak'),
            (dict(epsilon=0.5), 'not used'),
            (dict(refractory='AR', refractory_steps=0), 'refractory_steps'),
            (dict(bogus=1.0), 'unknown')]:
        with pytest.raises(ConfigError, match=word):
            LIFPlus(**kwargs)


def test_all_new_neurons_registered():
    for name in ('ALIF', 'CubaLIF', 'Izhikevich', 'LIFPlus'):
        assert MODELS.get(name) is not None
        neuron = MODELS.build(dict(type=name))
        x = torch.rand(3, 2, 4)
        assert neuron(x).shape == x.shape
        assert set(neuron.init_state(x[0])) == set(neuron.state_names)


def test_cubalif_nir_parameters_reproduce_forward_euler():
    """NIR CubaLIF (tau_syn I' = -I + w_in x, tau_mem v' = v_leak - v + r I,
    reset to v_reset above v_threshold), one Euler step dt per input step,
    synapse first, with the parameters the neuron reports."""
    neuron = CubaLIF(alpha_syn=0.6, alpha=0.7, beta=0.05, theta=0.8,
                     v0=-0.1).double()
    dt = 1e-3
    p = {k: v.item() for k, v in neuron.nir_parameters(dt).items()}
    assert p['tau_mem'] == pytest.approx(dt / 0.3)
    assert p['tau_syn'] == pytest.approx(dt / 0.4)
    gen = torch.Generator().manual_seed(6)
    x = torch.rand(30, 1, 1, generator=gen, dtype=torch.float64)
    current, v, spikes = 0.0, 0.0, []
    for x_t in x.flatten().tolist():
        current += dt / p['tau_syn'] * (-current + p['w_in'] * x_t)
        v += dt / p['tau_mem'] * (p['v_leak'] - v + p['r'] * current)
        fired = v > p['v_threshold']
        spikes.append(1.0 if fired else 0.0)
        if fired:
            v = p['v_reset']
    assert neuron(x).flatten().tolist() == spikes
    assert sum(spikes) >= 3
    with pytest.raises(ConfigError, match='soft'):
        CubaLIF(reset='soft').nir_parameters()
