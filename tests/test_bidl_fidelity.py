"""Our neurons and layers against BIDL's equations (LynxiTech/BIDL 1.9.0,
layers/lif.py and layers/lifplus.py), worked by hand or by a small
independent loop written here from the equations (no BIDL code)."""
import math

import numpy as np
import pytest
import torch

from bidl_train.neurons import LIF


# ---------------------------------------------------------------------------
# LIAF training noise: BIDL's scale, and memb_mode 0 before the noise
# ---------------------------------------------------------------------------
def _noisy_step(x, noise, seed, **kwargs):
    """One training step of a fresh LIF on ``x`` (one time step)."""
    neuron = LIF(noise=noise, act=None, mode='analog', **kwargs).train()
    torch.manual_seed(seed)
    return neuron(x[None])[0]


def test_noise_scale_fc_is_unbiased_std_over_the_whole_batch():
    # [B, N] = [2, 3]: BIDL's torch.std(v, dim=[]) reduces every entry of
    # the batch, divisor n - 1 = 5
    x = torch.tensor([[0.1, 0.4, 0.7], [0.2, 0.9, -0.3]])
    values = x.flatten().tolist()
    mean = sum(values) / 6
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / 5)
    torch.manual_seed(11)
    z = torch.randn(2, 3)
    got = _noisy_step(x, 0.5, 11, memb_mode=1)  # u~ - theta
    torch.testing.assert_close(got, x + 0.5 * std * z - 0.5)
    # memb_mode 0 is BIDL's o1: the membrane before the noise
    torch.testing.assert_close(_noisy_step(x, 0.5, 11, memb_mode=0), x)


def test_noise_scale_conv_is_unbiased_std_per_sample_and_channel():
    x = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    x = (x * 0.37) % 1.3  # uneven spreads per (sample, channel)
    expected_std = torch.tensor(np.std(x.numpy(), axis=(2, 3), ddof=1,
                                       keepdims=True))
    torch.manual_seed(3)
    z = torch.randn(x.shape)
    got = _noisy_step(x, 0.2, 3, memb_mode=1)
    torch.testing.assert_close(got, x + 0.2 * expected_std * z - 0.5)


def test_noise_on_1x1_maps_is_zero_not_nan():
    # BIDL's unbiased std of a single value is NaN and silences the
    # neuron; ours gives such a map no noise: the training output equals
    # the noiseless one and stays finite
    x = torch.rand(4, 2, 3, 1, 1) * 2
    neuron = LIF(noise=0.5, act=None, mode='analog', memb_mode=3).train()
    got = neuron(x)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, neuron.eval()(x))
    spikes = LIF(noise=0.5).train()(x)
    torch.testing.assert_close(spikes, LIF().eval()(x))
    assert spikes.sum() > 0


def test_noise_fires_and_resets_on_the_noisy_membrane():
    # two steps by hand: u0 = x0, u~0 = u0 + noise; s0 = u~0 > 0.5;
    # v0 = 0.3 * (1 - s0) * u~0; u1 = x1 + v0 (before noise) is the
    # memb_mode 0 output of step 1
    x = torch.tensor([[[0.45, 0.3, 0.6, 0.1]], [[0.2, 0.2, 0.2, 0.2]]])
    torch.manual_seed(5)
    z0 = torch.randn(1, 4)
    values = x[0].flatten().tolist()
    mean = sum(values) / 4
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / 3)
    noisy0 = x[0] + 1.0 * std * z0
    fired = (noisy0 > 0.5).float()
    v0 = 0.3 * (1 - fired) * noisy0
    neuron = LIF(noise=1.0, act=None, mode='analog', memb_mode=0).train()
    torch.manual_seed(5)
    got = neuron(x)
    torch.testing.assert_close(got[0], x[0])
    torch.testing.assert_close(got[1], x[1] + v0)
