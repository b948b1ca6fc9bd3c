"""Temporal attention layers (TA, TCJA) against hand-composed numpy code."""
import numpy as np
import pytest
import torch
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.layers import TA, TCJA, Conv2dLif, FcLif, SpikingSequential
from bidl_train.registry import MODELS


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def set_weights(module, gen):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype))


# ---------------------------------------------------------------------------
# TA
# ---------------------------------------------------------------------------
def numpy_ta(x, w1, w2, pooling='avg'):
    """Yao et al. 2021: squeeze over every non-(T, B) dim, a two-layer
    bias-free MLP over T, a sigmoid, and a per-(t, b) scale."""
    steps, batch = x.shape[:2]
    y = np.empty_like(x)
    for b in range(batch):
        z_avg = np.array([x[t, b].mean() for t in range(steps)])
        logits = w2 @ np.maximum(w1 @ z_avg, 0.0)
        if pooling == 'avg+max':
            z_max = np.array([x[t, b].max() for t in range(steps)])
            logits = logits + w2 @ np.maximum(w1 @ z_max, 0.0)
        d = sigmoid(logits)
        for t in range(steps):
            y[t, b] = d[t] * x[t, b]
    return y


@pytest.mark.parametrize('pooling', ['avg', 'avg+max'])
@pytest.mark.parametrize('shape', [(6, 3, 4, 5, 5), (6, 3, 7)])
def test_ta_matches_hand_composition(pooling, shape):
    gen = torch.Generator().manual_seed(0)
    ta = TA(steps=6, reduction=2, pooling=pooling).double()
    set_weights(ta, gen)
    x = torch.rand(shape, generator=gen, dtype=torch.float64)
    w1 = ta.mlp[0].weight.detach().numpy()
    w2 = ta.mlp[2].weight.detach().numpy()
    assert w1.shape == (3, 6) and w2.shape == (6, 3)
    expected = numpy_ta(x.numpy(), w1, w2, pooling)
    np.testing.assert_allclose(ta(x).detach().numpy(), expected, rtol=1e-12,
                               atol=1e-12)


def test_ta_hand_example_one_step_dominant():
    # T = 2, r = 1, W1 = I, W2 = I: d_t = sigmoid(relu(mean of x_t))
    ta = TA(steps=2, reduction=1).double()
    with torch.no_grad():
        ta.mlp[0].weight.copy_(torch.eye(2))
        ta.mlp[2].weight.copy_(torch.eye(2))
    x = torch.tensor([[[2.0, 0.0]], [[-1.0, -3.0]]], dtype=torch.float64)
    # means: t0 = 1, t1 = -2 -> d = sigmoid(1), sigmoid(0) = .5
    y = ta(x).detach()
    np.testing.assert_allclose(y[0, 0].numpy(), [2 * sigmoid(1.0), 0.0])
    np.testing.assert_allclose(y[1, 0].numpy(), [-0.5, -1.5])


# ---------------------------------------------------------------------------
# TCJA
# ---------------------------------------------------------------------------
def conv1d_same(signal, weight):
    """signal [in, L], weight [out, in, k], torch's 'same' rule: total
    padding k - 1, (k - 1) // 2 on the left, the rest on the right."""
    n_in, length = signal.shape
    n_out, _, k = weight.shape
    left = (k - 1) // 2
    padded = np.zeros((n_in, length + k - 1))
    padded[:, left:left + length] = signal
    out = np.zeros((n_out, length))
    for o in range(n_out):
        for pos in range(length):
            out[o, pos] = (weight[o] * padded[:, pos:pos + k]).sum()
    return out


def numpy_tcja(x, w_t, w_c):
    """Zhu et al. 2022: Z = spatial mean [T, C] per sample; A = conv over C
    with T as channels, B = conv over T with C as channels; F =
    sigmoid(A * B); Y = F * X."""
    steps, batch, channels = x.shape[:3]
    y = np.empty_like(x)
    for b in range(batch):
        z = x[:, b].reshape(steps, channels, -1).mean(-1)  # [T, C]
        along_c = conv1d_same(z, w_t)  # [T, C]
        along_t = conv1d_same(z.T, w_c).T  # [T, C]
        f = sigmoid(along_c * along_t)
        for t in range(steps):
            for c in range(channels):
                y[t, b, c] = f[t, c] * x[t, b, c]
    return y


@pytest.mark.parametrize('kernels', [(2, 1), (3, 2), (1, 3)])
@pytest.mark.parametrize('shape', [(5, 2, 4, 3, 3), (5, 2, 4)])
def test_tcja_matches_hand_composition(kernels, shape):
    gen = torch.Generator().manual_seed(1)
    tcja = TCJA(steps=5, channels=4, kernel_size_t=kernels[0],
                kernel_size_c=kernels[1]).double()
    set_weights(tcja, gen)
    x = torch.rand(shape, generator=gen, dtype=torch.float64)
    expected = numpy_tcja(x.numpy(), tcja.conv_t.weight.detach().numpy(),
                          tcja.conv_c.weight.detach().numpy())
    np.testing.assert_allclose(tcja(x).detach().numpy(), expected,
                               rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------
# No single-step form; registration; refusals; training
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('layer', [TA(steps=4), TCJA(steps=4, channels=3)])
def test_step_is_refused_with_a_clear_error(layer):
    with pytest.raises(ConfigError, match='whole sequence'):
        layer.step(torch.rand(2, 3, 4, 4))


def test_spiking_sequential_step_names_the_attention_layer():
    net = SpikingSequential(
        Conv2dLif(2, 3, pool=2), TCJA(steps=4, channels=3),
        dict(type='TA', steps=4), nn.Flatten(), FcLif(3 * 2 * 2, 5))
    x = torch.rand(4, 2, 2, 4, 4)
    assert net(x).shape == (4, 2, 5)  # the multi-step form works
    with pytest.raises(ConfigError, match=r'SpikingSequential\[1\] \(TCJA\)'
                       r'.*whole sequence'):
        net.step(x[0])


def test_registered_and_trainable():
    ta = MODELS.build(dict(type='TA', steps=8, reduction=4))
    tcja = MODELS.build(dict(type='TCJA', steps=8, channels=6))
    x = torch.rand(8, 3, 6, 5, 5, requires_grad=True)
    (ta(x).sum() + tcja(x).sum()).backward()
    assert ta.mlp[0].weight.grad is not None
    assert tcja.conv_c.weight.grad is not None and x.grad is not None
    scores = ta.scores(x)
    assert scores.shape == (8, 3) and ((scores > 0) & (scores < 1)).all()
    assert tcja.scores(x).shape == (8, 3, 6)


@pytest.mark.parametrize('build,word', [
    (lambda: TA(steps=0), 'steps'),
    (lambda: TA(steps=4, reduction=8), 'reduction'),
    (lambda: TA(steps=4, pooling='max'), 'pooling'),
    (lambda: TCJA(steps=4, channels=0), 'channels'),
    (lambda: TCJA(steps=4, channels=3, kernel_size_t=0), 'kernel_size_t'),
])
def test_bad_arguments_refused(build, word):
    with pytest.raises(ConfigError, match=word):
        build()


def test_wrong_sequence_length_or_channels_refused():
    with pytest.raises(ConfigError, match='T = 4'):
        TA(steps=4)(torch.rand(5, 2, 3))
    with pytest.raises(ConfigError, match='channels'):
        TCJA(steps=4, channels=3)(torch.rand(4, 2, 5, 2, 2))
    with pytest.raises(ConfigError, match='at least 3'):
        TCJA(steps=4, channels=3)(torch.rand(4, 2))
