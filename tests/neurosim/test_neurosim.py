"""Neural-dynamics toolkit against analytic and published behaviour."""
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from bidl_train.errors import ConfigError, DataError
from bidl_train.neurosim import Network
from bidl_train.neurosim.analysis import (binned_counts, firing_rates,
                                          isi_cv, mean_pairwise_correlation)

ROOT = Path(__file__).resolve().parents[2]


def _single(model, amplitude, dt, duration, traces=False, **extra):
    """One population of one neuron per trial, a DC step from t = 0."""
    batch = len(amplitude)
    cfg = dict(dt=dt, duration=duration, batch=batch,
               populations=dict(n=dict(size=1, model=model)),
               inputs=[dict(type='DC', target='n', amplitude=amplitude,
                            **extra)],
               record=dict(traces=dict(n=dict(vars=['v']))) if traces else
               None)
    return Network.from_config(cfg).run()


def test_izhikevich_published_regimes():
    # Izhikevich 2003 (Fig. 2), I = 10 for 1 s: RS adapts, IB bursts once
    # then spikes tonically, CH fires repeated high-frequency bursts, FS
    # fires fast without adaptation. One mixed population, one neuron each.
    regimes = ['RS', 'IB', 'CH', 'FS']
    cfg = dict(dt=0.25, duration=1000.0,
               populations=dict(n=dict(size=4, model=dict(
                   type='Izhikevich', regime=regimes))),
               inputs=[dict(type='DC', target='n', amplitude=10.0)])
    res = Network.from_config(cfg).run()
    t, idx = res.spike_times('n')
    isi = {r: np.diff(np.sort(t[idx == j])) for j, r in enumerate(regimes)}
    rs, ib, ch, fs = (isi[r] for r in regimes)
    # RS: tonic, adapting (first ISI clearly shorter than the last), no
    # bursts, 10-40 Hz
    assert rs.min() > 10 and rs[0] < 0.7 * rs[-1]
    assert 10 <= len(rs) + 1 <= 40
    # IB: an initial burst (two ISIs < 10 ms) then regular tonic spiking
    assert (ib[:2] < 10).all() and (ib[3:] > 20).all()
    assert ib[len(ib) // 2:].std() / ib[len(ib) // 2:].mean() < 0.1
    # CH: many bursts: short intra-burst and long inter-burst intervals
    assert (ch < 10).sum() >= 20 and (ch > 25).sum() >= 5
    # FS: > 3x the RS rate, all later ISIs short, no adaptation
    assert len(fs) > 3 * len(rs)
    assert (fs[1:] < 15).all() and fs[-1] < 1.5 * fs[1]


def test_hodgkin_huxley_spike_shape_and_repetitive_threshold():
    # standard HH: spikes peak near +40 mV; repetitive firing needs about
    # 6.2-6.3 uA/cm^2 (6 gives an onset response only, 7 a spike train)
    res = _single(dict(type='HodgkinHuxley'), [6.0, 7.0], dt=0.025,
                  duration=100.0, traces=True)
    n6 = len(res.spike_times('n', 0)[0])
    n7 = len(res.spike_times('n', 1)[0])
    assert n6 <= 2
    assert n7 >= 5
    peak = res.traces['n']['v'][:, 1, 0].max()
    assert 35.0 < peak < 45.0
    # resting potential before input: -65 mV
    rest = _single(dict(type='HodgkinHuxley'), [0.0], dt=0.025, duration=5.0,
                   traces=True).traces['n']['v']
    assert abs(rest[-1, 0, 0] + 65.0) < 0.1


def test_lif_rate_matches_analytic_fi_curve():
    # rate = 1 / (t_ref + tau ln(RI / (RI - theta))), theta = 15 mV,
    # tau 10 ms, t_ref 2 ms. Spike times are quantised to dt, so each ISI
    # is within dt of the analytic one.
    ri = [16.0, 20.0, 30.0, 60.0, 14.0]
    dt = 0.05
    res = _single(dict(type='LIF', tau_m=10.0, t_ref=2.0, v_th=-50.0,
                       v_rest=-65.0, v_reset=-65.0, R=1.0), ri, dt=dt,
                  duration=200.0)
    for b, x in enumerate(ri):
        t, _ = res.spike_times('n', b)
        if x <= 15.0:
            assert len(t) == 0  # below rheobase: never fires
            continue
        isi = np.diff(t)
        analytic = 2.0 + 10.0 * math.log(x / (x - 15.0))
        assert np.abs(isi - analytic).max() <= dt + 1e-9
        # steady rate 1 / mean ISI, within the relative quantisation dt/ISI
        assert 1000.0 / isi.mean() == pytest.approx(
            1000.0 / analytic, rel=1.01 * dt / analytic)


def test_adex_adapts_and_is_silent_without_input():
    res = _single(dict(type='AdEx'), [0.0, 1000.0], dt=0.1, duration=300.0)
    assert len(res.spike_times('n', 0)[0]) == 0
    isi = np.diff(res.spike_times('n', 1)[0])
    assert len(isi) >= 4 and isi[-1] > 1.5 * isi[0]  # spike-rate adaptation


def test_two_compartment_steady_state_and_coupling():
    # constant dendritic input R_d I = 10 mV, g_c = 0.5:
    # x_d = 10 * 1.5 / 2 = 7.5 mV, x_s = 0.5 * 10 / 2 = 2.5 mV above rest
    model = dict(type='TwoCompartment', g_c=0.5, tau_s=10.0, tau_d=20.0)
    # (forward Euler's fixed point is the exact steady state at any dt)
    cfg = dict(dt=0.5, duration=300.0, batch=2,
               populations=dict(n=dict(size=1, model=model)),
               inputs=[dict(type='DC', target='n', compartment='dendrite',
                            amplitude=[10.0, 100.0])],
               record=dict(traces=dict(n=dict(vars=['v', 'v_d']))))
    res = Network.from_config(cfg).run()
    v, vd = res.traces['n']['v'][-1, 0, 0], res.traces['n']['v_d'][-1, 0, 0]
    assert v == pytest.approx(-65.0 + 2.5, abs=1e-3)
    assert vd == pytest.approx(-65.0 + 7.5, abs=1e-3)
    assert len(res.spike_times('n', 0)[0]) == 0
    # 100 mV of drive: x_s -> 25 mV > 15 mV threshold: the soma fires
    assert len(res.spike_times('n', 1)[0]) > 5
    # uncoupled, the same drive never reaches the soma
    model['g_c'] = 0.0
    res = Network.from_config(cfg).run()
    assert len(res.spike_times('n', 1)[0]) == 0


def test_delay_and_one_to_one_projection():
    # source spikes at 1.0 ms (neurons 0 and 2); delay 3 ms; a one-step
    # current pulse big enough to fire the target: target spikes at 4.0 ms
    cfg = dict(
        dt=0.1, duration=10.0,
        populations=dict(
            src=dict(size=3, model=dict(type='SpikeFileSource',
                                        times=[1.0, 1.0], indices=[0, 2])),
            dst=dict(size=3, model=dict(type='LIF'))),
        projections=[dict(pre='src', post='dst',
                          connectivity=dict(type='one_to_one'), weight=500.0,
                          delay=3.0, tau_syn=0.0)])
    res = Network.from_config(cfg).run()
    t, idx = res.spike_times('dst')
    assert sorted(idx.tolist()) == [0, 2]
    assert np.allclose(t, 4.0)


def test_connectivity_rules():
    def proj(rule, n_pre=100, n_post=100, same=False):
        pops = dict(a=dict(size=n_pre, model=dict(type='LIF')),
                    b=dict(size=n_post, model=dict(type='LIF')))
        net = Network.from_config(dict(
            populations=pops, projections=[dict(
                pre='a', post='a' if same else 'b', connectivity=rule,
                weight=1.0)]))
        return net.projections[0].mask
    assert proj(dict(type='all_to_all'), 5, 7).sum() == 35
    assert proj(dict(type='all_to_all'), 5, 5, same=True).sum() == 20
    n, p = 100 * 100, 0.2
    count = proj(dict(type='fixed_probability', p=p)).sum().item()
    assert abs(count - n * p) < 5 * math.sqrt(n * p * (1 - p))
    with pytest.raises(ConfigError, match='one_to_one'):
        proj(dict(type='one_to_one'), 3, 4)
    with pytest.raises(ConfigError, match='connectivity'):
        proj(dict(type='gaussian'))


@pytest.mark.parametrize('order', ['causal', 'acausal'])
def test_stdp_single_pair(order):
    # pre at 10 ms, post at 20 ms: dw = +A_plus exp(-10 / 20);
    # post at 10, pre at 20: dw = -A_minus exp(-10 / 20)
    pre_t, post_t = (10.0, 20.0) if order == 'causal' else (20.0, 10.0)
    cfg = dict(
        dt=0.1, duration=40.0,
        populations=dict(
            pre=dict(size=1, model=dict(type='SpikeFileSource',
                                        times=[pre_t], indices=[0])),
            post=dict(size=1, model=dict(type='LIF'))),
        projections=[dict(pre='pre', post='post',
                          connectivity=dict(type='all_to_all'), weight=0.5,
                          plasticity=dict(type='STDP', A_plus=0.01,
                                          A_minus=0.012, tau_plus=20.0,
                                          tau_minus=20.0))],
        inputs=[dict(type='DC', target='post', amplitude=1e5, start=post_t,
                     stop=post_t + 0.1)])
    res = Network.from_config(cfg).run()
    assert np.allclose(res.spike_times('post')[0], [post_t])
    dw = res.weights['pre->post'][0, 0] - 0.5
    expect = 0.01 * math.exp(-0.5) if order == 'causal' else \
        -0.012 * math.exp(-0.5)
    assert dw == pytest.approx(expect, rel=1e-6)


def test_poisson_source_statistics():
    cfg = dict(dt=1.0, duration=1000.0, seed=1,
               populations=dict(p=dict(size=100, model=dict(
                   type='PoissonSource', rate=20.0))))
    res = Network.from_config(cfg).run()
    t, idx = res.spike_times('p')
    n, q = 100 * 1000, 20.0 * 1.0 / 1000.0
    assert abs(len(t) - n * q) < 5 * math.sqrt(n * q * (1 - q))
    # Poisson: ISI CV near 1; independent trains: correlation near 0
    assert np.nanmean(isi_cv(t, idx, 100)) == pytest.approx(1.0, abs=0.15)
    counts = binned_counts(t, idx, 100, 1000.0, bin_ms=10.0)
    assert abs(mean_pairwise_correlation(counts)) < 0.05


def test_analysis_hand_examples():
    # a 10 Hz clock: CV 0; two identical trains: r = 1
    t = np.arange(0.0, 1000.0, 100.0)
    assert isi_cv(t, np.zeros(10, int), 1)[0] == 0.0
    assert firing_rates(t, np.zeros(10, int), 1, 1000.0)[0] == 10.0
    counts = binned_counts(np.r_[t, t], np.r_[np.zeros(10, int),
                                              np.ones(10, int)], 2, 1000.0,
                           bin_ms=50.0)
    assert mean_pairwise_correlation(counts) == pytest.approx(1.0)
    assert counts.sum() == 20 and counts[0, 0] == 1 and counts[0, 1] == 0


def test_spike_file_and_config_errors(tmp_path):
    bad = tmp_path / 'spikes.npz'
    np.savez(bad, t=np.zeros(1))
    cfg = dict(populations=dict(s=dict(size=2, model=dict(
        type='SpikeFileSource', file=str(bad)))))
    with pytest.raises(DataError, match='spikes.npz'):
        Network.from_config(cfg)
    np.savez(bad, times=np.array([1.0]), indices=np.array([5]))
    with pytest.raises(DataError, match='0..1'):
        Network.from_config(cfg).run()
    with pytest.raises(ConfigError, match='populations.x.model.type'):
        Network.from_config(dict(populations=dict(x=dict(
            size=1, model=dict(type='Hodgkin')))))
    with pytest.raises(ConfigError, match='dendrite'):
        Network.from_config(dict(
            populations=dict(x=dict(size=1, model=dict(type='LIF'))),
            inputs=[dict(type='DC', target='x', amplitude=1.0,
                          compartment='dendrite')]))
    with pytest.raises(ConfigError, match='durration'):
        Network.from_config(dict(durration=5.0, populations=dict(
            x=dict(size=1, model=dict(type='LIF')))))
    with pytest.raises(ConfigError, match='regime'):
        Network.from_config(dict(populations=dict(x=dict(
            size=1, model=dict(type='Izhikevich', regime='XX')))))


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        'simulate_tool', ROOT / 'tools' / 'simulate.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_simulate_tool_writes_npz_and_plots(tmp_path, capsys):
    tool = _load_tool()
    out = tmp_path / 'run'
    code = tool.main([
        str(ROOT / 'configs' / 'neurosim' / 'ei_network.yaml'), '--out',
        str(out), '--cfg-options', 'duration=100.0'
    ])
    assert code == 0
    for name in ('spikes.npz', 'traces.npz', 'weights.npz', 'summary.json',
                 'raster.png', 'rate.png', 'isi_cv.png', 'correlation.png',
                 'traces.png'):
        assert (out / name).is_file(), name
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['duration_ms'] == 100.0
    spikes = np.load(out / 'spikes.npz')
    exc = summary['populations']['exc']
    assert exc['spikes'] == len(spikes['exc_time'])
    assert spikes['exc_time'].max() < 100.0
    traces = np.load(out / 'traces.npz')
    assert traces['exc_v'].shape == (200, 1, 3)  # 100 ms / 0.5 ms steps
    assert tool.main([str(tmp_path / 'none.py')]) == 2
    assert 'does not exist' in capsys.readouterr().err


def test_every_example_config_builds():
    from mmengine.config import Config
    paths = sorted((ROOT / 'configs' / 'neurosim').glob('*.yaml'))
    assert len(paths) >= 5
    for path in paths:
        cfg = Config.fromfile(str(path)).to_dict()
        net = Network.from_config(cfg)
        assert net.sizes, path.name


def test_spike_file_replay_and_izhikevich_peak_in_traces(tmp_path):
    path = tmp_path / 'replay.npz'
    np.savez(path, times=np.array([0.5, 2.0, 2.0]),
             indices=np.array([1, 0, 2]))
    cfg = dict(dt=0.5, duration=5.0,
               populations=dict(
                   s=dict(size=3, model=dict(type='SpikeFileSource',
                                             file=str(path))),
                   iz=dict(size=1, model=dict(type='Izhikevich'))),
               inputs=[dict(type='DC', target='iz', amplitude=100.0)],
               record=dict(traces=dict(iz=dict(vars=['v']))))
    res = Network.from_config(cfg).run()
    t, idx = res.spike_times('s')
    assert sorted(zip(t.tolist(), idx.tolist())) == [(0.5, 1), (2.0, 0),
                                                     (2.0, 2)]
    # a spike step of the Izhikevich cell shows v = v_peak = 30 mV
    steps = (res.spike_times('iz')[0] / 0.5).round().astype(int)
    assert len(steps) and np.allclose(res.traces['iz']['v'][steps, 0, 0],
                                      30.0)


def test_simulate_tool_refuses_a_python_base_in_a_yaml_config(tmp_path,
                                                               capsys):
    """A YAML config is data: naming a Python base must not run it."""
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'evil.py'
    evil.write_text(f'import pathlib\npathlib.Path({str(marker)!r}).touch()\n'
                    'duration = 1.0\n')
    cfg = tmp_path / 'net.yaml'
    cfg.write_text('_base_: [evil.py]\n')
    assert _load_tool().main([str(cfg), '--out', str(tmp_path / 'o')]) == 2
    assert not marker.exists()
    assert 'evil.py' in capsys.readouterr().err


@pytest.mark.parametrize('regime', ['RS', 'IB', 'CH', 'FS', 'LTS', 'TC', 'RZ'])
def test_izhikevich_population_equals_the_trainable_neuron(regime):
    # one set of equations: the simulator's population and the trainable
    # neuron (float64, the same dt and current) spike on the same steps
    import torch

    from bidl_train.neurons import Izhikevich as TrainableIzhikevich
    from bidl_train.neurosim.neurons import Izhikevich as Population
    steps, dt, current = 800, 0.5, 10.0
    population = Population(regime=regime)
    state = population.init_state(1, 1, 'cpu')
    sim = []
    for _ in range(steps):
        state, spikes = population.step(
            state, {'soma': torch.full((1, 1), current,
                                       dtype=torch.float64)}, dt)
        sim.append(bool(spikes.item()))
    neuron = TrainableIzhikevich(preset=regime, dt=dt).double()
    with torch.no_grad():
        # parameters are created in float32: give them the float64 values
        for name, value in zip('abcd', population.abcd.values()):
            getattr(neuron, name).fill_(value[0])
        trained = neuron(torch.full((steps, 1, 1), current,
                                    dtype=torch.float64)).flatten()
    assert np.flatnonzero(sim).tolist() == \
        torch.nonzero(trained).flatten().tolist()
    assert sum(sim) > 3


def test_stdp_projection_equals_the_training_rule():
    # the simulator's STDP and the training stack's trace rule give the same
    # weight change for the same spike trains (weights far from the bounds)
    import torch

    from bidl_train.learning.rules import STDP as TraceSTDP
    from bidl_train.neurosim.plasticity import STDP

    class Projection:
        weight = torch.full((3, 2), 0.5, dtype=torch.float64)
        mask = torch.ones(3, 2, dtype=torch.bool)

    gen = torch.Generator().manual_seed(0)
    pre = torch.rand(40, 2, 3, generator=gen) < 0.3
    post = torch.rand(40, 2, 2, generator=gen) < 0.3
    rule = STDP(A_plus=0.001, A_minus=0.0012, tau_plus=10.0, tau_minus=15.0)
    state = rule.init_state(2, 3, 2, 'cpu')
    projection = Projection()
    for t in range(40):
        rule.update(projection, state, pre[t], post[t], dt=1.0)
    # independent: the textbook trace recursion, written out here
    x = np.zeros((2, 3))
    y = np.zeros((2, 2))
    w = np.full((3, 2), 0.5)
    for t in range(40):
        p, q = pre[t].double().numpy(), post[t].double().numpy()
        earlier_y = y * math.exp(-1.0 / 15.0)
        x = x * math.exp(-1.0 / 10.0) + p
        y = earlier_y + q
        w += (0.001 * x.T @ q - 0.0012 * p.T @ earlier_y) / 2
    np.testing.assert_allclose(projection.weight.numpy(), w, rtol=1e-12)
    assert isinstance(rule._rule(1.0), TraceSTDP)
