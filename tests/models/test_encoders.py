"""Spike encoders against hand-computed trains and binomial statistics."""
import math

import pytest
import torch

from bidl_train.errors import ConfigError
from bidl_train.models.data_preprocessor import SpikingDataPreprocessor
from bidl_train.datasets.transforms import SpikeEncode
from bidl_train.models.encoders import (DeltaEncoder, DirectEncoder,
                                        LatencyEncoder, PopulationEncoder,
                                        RateEncoder)
from bidl_train.registry import MODELS, TRANSFORMS


def _spike_steps(train):
    """Step index of every spike of a 1D train (list)."""
    return torch.nonzero(train).flatten().tolist()


def test_latency_log_matches_rc_charging_time():
    # BIDL's MNIST latency setting: T=8, tau=7, threshold 0.01.
    # t* = 7 ln(x / (x - 0.01)): x=1 -> 0.0704 -> 0; x=0.02 -> 7 ln 2 = 4.85
    # -> 5; x=0.015 -> 7 ln 3 = 7.69 -> clipped to 7; x=0.01 -> no spike.
    enc = LatencyEncoder(T=8, method='log', tau=7, threshold=0.01)
    x = torch.tensor([1.0, 0.02, 0.015, 0.01, 0.0])
    s = enc(x)
    assert s.shape == (8, 5)
    assert _spike_steps(s[:, 0]) == [0]
    assert _spike_steps(s[:, 1]) == [5]
    assert _spike_steps(s[:, 2]) == [7]
    assert s[:, 3].sum() == 0 and s[:, 4].sum() == 0


def test_latency_linear_one_spike_per_input():
    # tau = T - 1 = 10: t* = 10 (1 - x): 1 -> 0, 0.5 -> 5, 0.26 -> 7.4 -> 7
    enc = LatencyEncoder(T=11, method='linear', tau=None, threshold=0.01)
    x = torch.tensor([[1.0, 0.5], [0.26, 0.005]])
    s = enc(x)
    assert s.shape == (11, 2, 2)
    assert _spike_steps(s[:, 0, 0]) == [0]
    assert _spike_steps(s[:, 0, 1]) == [5]
    assert _spike_steps(s[:, 1, 0]) == [7]
    assert s[:, 1, 1].sum() == 0
    assert s.sum(0).max() == 1  # never more than one spike per input


def test_population_latency_responses_for_given_centre():
    # 5 neurons, centres 0, .25, .5, .75, 1, sigma = 1 / (1.5 * 4) = 1/6.
    # x = 0.5: r = exp(-(0.5 - mu)^2 * 18) = [e^-4.5, e^-1.125, 1, e^-1.125,
    # e^-4.5] = [0.011, 0.325, 1, 0.325, 0.011]; T = 10 -> times
    # round((1 - r) * 9) = [-, 6, 0, 6, -] (r < 0.1 does not fire).
    enc = PopulationEncoder(T=10, num_neurons=5)
    r, _ = enc.responses(torch.tensor([[[0.5]]]))  # [C=1, H=1, W=1]
    expect = [math.exp(-4.5), math.exp(-1.125), 1.0, math.exp(-1.125),
              math.exp(-4.5)]
    assert torch.allclose(r.flatten(), torch.tensor(expect), atol=1e-6)
    s = enc(torch.full((2, 1, 1, 1), 0.5))  # batch of 2, C=1
    assert s.shape == (10, 2, 5, 1, 1)
    per_neuron = [_spike_steps(s[:, 0, j, 0, 0]) for j in range(5)]
    assert per_neuron == [[], [6], [0], [6], []]


def test_population_channel_layout_and_explicit_centres():
    enc = PopulationEncoder(T=4, centres=[0.0, 1.0], sigma=0.1,
                            spike='latency', cutoff=0.5)
    x = torch.tensor([[[[0.0]], [[1.0]]]])  # [B=1, C=2, 1, 1]
    s = enc(x)
    assert s.shape == (4, 1, 4, 1, 1)
    # channel 0 (x=0) excites neuron 0 -> out channel 0 at step 0;
    # channel 1 (x=1) excites neuron 1 -> out channel 3 at step 0
    assert s[0, 0, :, 0, 0].tolist() == [1.0, 0.0, 0.0, 1.0]
    assert s[1:].sum() == 0


def test_population_rate_mode_statistics():
    enc = PopulationEncoder(T=400, centres=[0.5], sigma=0.25, spike='rate',
                            channel_dim=-1, seed=3)
    # x = 0.75: r = exp(-0.0625 / 0.125) = e^-0.5 = 0.6065
    s = enc(torch.full((50, 1), 0.75))
    n, p = 400 * 50, math.exp(-0.5)
    assert abs(s.sum().item() - n * p) < 5 * math.sqrt(n * p * (1 - p))


def test_delta_events_for_hand_signal():
    # delta 0.25, signal 0, 0.3, 1.0, 0.9, 0.2:
    # t1 +0.3 -> 1 ON (ref .25); t2 +.75 -> 3 ON (ref 1.0); t3 -.1 -> none;
    # t4 -.8 -> 3 OFF (ref .25)
    enc = DeltaEncoder(delta=0.25)
    sig = torch.tensor([0.0, 0.3, 1.0, 0.9, 0.2])
    ev = enc(sig)
    assert ev.shape == (5, 2)
    assert ev[:, 1].tolist() == [0, 1, 3, 0, 0]  # ON
    assert ev[:, 0].tolist() == [0, 0, 0, 0, 3]  # OFF
    assert DeltaEncoder(delta=0.25, binary=True)(sig)[:, 1].tolist() == \
        [0, 1, 1, 0, 0]


def test_delta_time_axis_not_first():
    sig = torch.tensor([[0.0, 0.5], [1.0, 0.0]])  # [channels=2, L=2]
    ev = DeltaEncoder(delta=0.5, time_dim=1)(sig)
    assert ev.shape == (2, 2, 2)
    # channel 0 rises by 0.5 = 1 delta (1 ON); channel 1 falls 1.0 (2 OFF)
    assert ev[1, 0].tolist() == [0, 1] and ev[1, 1].tolist() == [2, 0]


def test_rate_bernoulli_within_binomial_bounds_and_seeded():
    enc = RateEncoder(T=20, seed=0)
    x = torch.full((1000, ), 0.3)
    s = enc(x)
    n, p = 20 * 1000, 0.3
    sd = math.sqrt(n * p * (1 - p))
    assert set(s.unique().tolist()) <= {0.0, 1.0}
    assert abs(s.sum().item() - n * p) < 5 * sd
    assert torch.equal(RateEncoder(T=20, seed=0)(x), s)
    assert not torch.equal(RateEncoder(T=20, seed=1)(x), s)
    g = torch.Generator().manual_seed(7)
    a = RateEncoder(T=20)(x, generator=g)
    g.manual_seed(7)
    assert torch.equal(RateEncoder(T=20)(x, generator=g), a)


def test_rate_poisson_probability_and_gain_offset():
    enc = RateEncoder(T=50, method='poisson', seed=2)
    s = enc(torch.full((1000, ), 0.5))
    n, p = 50 * 1000, 1 - math.exp(-0.5)  # P(at least one event) = 0.3935
    assert abs(s.sum().item() - n * p) < 5 * math.sqrt(n * p * (1 - p))
    # gain 2, offset -0.5: x = 0.2 -> p = -0.1 -> 0; x = 0.8 -> 1.1 -> 1
    s = RateEncoder(T=30, gain=2.0, offset=-0.5, seed=0)(
        torch.tensor([0.2, 0.8]))
    assert s[:, 0].sum() == 0 and s[:, 1].sum() == 30


def test_direct_repeats_the_value():
    x = torch.tensor([[0.2, 0.7]])
    s = DirectEncoder(T=3, gain=2.0)(x)
    assert s.shape == (3, 1, 2)
    assert torch.allclose(s, torch.tensor([[[0.4, 1.4]]] * 3))


def test_preprocessor_encodes_static_batches():
    pre = SpikingDataPreprocessor(
        encoder=dict(type='LatencyEncoder', T=8, tau=7))
    batch = dict(inputs=torch.ones(4, 1, 5, 5), label=torch.arange(4))
    out = pre(batch)
    assert out['inputs'].shape == (8, 4, 1, 5, 5)
    assert out['inputs'][0].sum() == 4 * 25 and out['inputs'][1:].sum() == 0
    # without an encoder: the [B, T, ...] -> [T, B, ...] swap as before
    out = SpikingDataPreprocessor()(dict(inputs=torch.zeros(4, 3, 2)))
    assert out['inputs'].shape == (3, 4, 2)
    with pytest.raises(ConfigError):
        SpikingDataPreprocessor(encoder=42)


def test_registered_and_transform_per_sample():
    assert MODELS.get('PopulationEncoder') is PopulationEncoder
    t = TRANSFORMS.build(
        dict(type='SpikeEncode', encoder=dict(type='PopulationEncoder',
                                              T=10, num_neurons=5)))
    res = t(dict(inputs=torch.rand(1, 28, 28), label=3))
    assert res['inputs'].shape == (10, 5, 28, 28)
    with pytest.raises(ConfigError):
        t(dict(image=torch.zeros(1)))


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match='method'):
        RateEncoder(T=4, method='gauss')
    with pytest.raises(ConfigError, match='T'):
        LatencyEncoder(T=0)
    with pytest.raises(ConfigError, match='delta'):
        DeltaEncoder(delta=0)


def test_population_rejects_missing_channel_axis():
    with pytest.raises(ConfigError, match='channel_dim'):
        PopulationEncoder(T=4)(torch.zeros(5))  # 1D input, channel_dim -3


def test_spike_encode_accepts_exactly_the_registered_encoders():
    from bidl_train.datasets.transforms.encode import ENCODER_TYPES
    from bidl_train.models.encoders import _Encoder
    registered = {name for name, cls in MODELS.module_dict.items()
                  if isinstance(cls, type) and issubclass(cls, _Encoder)}
    assert set(ENCODER_TYPES) == registered
    with pytest.raises(ConfigError, match='encoder.type'):
        SpikeEncode(dict(type='FcLif', in_features=2, out_features=2))
