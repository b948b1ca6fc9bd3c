"""Spiking layers: shapes, BIDL composition order, multi-step == single-step."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.layers import (Aggregation, Conv1dLif, Conv2dLif, Conv3dLif,
                               FcLif, Lif1d, Lif2d, SpikingSequential,
                               TimeFold)
from bidl_train.neurons import LIF, BaseNeuron
from bidl_train.registry import MODELS


def lif_loop(z, alpha=0.3, theta=0.5):
    """Default BIDL LIF (hard reset to 0), plain numpy loop over T."""
    z = np.asarray(z, np.float64)
    v = np.zeros(z.shape[1:])
    out = np.zeros_like(z)
    for t in range(z.shape[0]):
        u = z[t] + v
        s = (u > theta).astype(np.float64)
        out[t] = s
        v = alpha * (s * 0.0 + (1 - s) * u)
    return out


def run_steps(layer, x_seq):
    state, ys = None, []
    for x_t in x_seq:
        y, state = layer.step(x_t, state)
        ys.append(y)
    return torch.stack(ys)


def assert_forms_agree(layer, x_seq):
    layer.eval()
    multi = layer(x_seq)
    single = run_steps(layer, x_seq)
    if multi.dim() == single.dim() - 1:
        # ends in a temporal aggregation: the last step sees all T steps
        single = single[-1]
    assert multi.shape == single.shape
    torch.testing.assert_close(multi, single, atol=1e-6, rtol=0)
    return multi


def test_time_fold_runs_module_per_step():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, padding=1)
    fold = TimeFold(conv)
    x = torch.randn(4, 5, 2, 6, 6)
    y = fold(x)
    assert y.shape == (4, 5, 3, 6, 6)
    for t in range(4):
        torch.testing.assert_close(y[t], conv(x[t]))
    y_t, state = fold.step(x[1])
    assert state is None
    torch.testing.assert_close(y_t, y[1])
    assert isinstance(TimeFold(dict(type='Flatten')).module, nn.Flatten)


def test_fclif_equals_linear_then_lif():
    torch.manual_seed(1)
    layer = FcLif(6, 4).eval()
    x = torch.randn(5, 3, 6)
    z = x @ layer.linear.weight.detach().T + layer.linear.bias.detach()
    expected = lif_loop(z.numpy())
    y = assert_forms_agree(layer, x)
    assert y.shape == (5, 3, 4)
    np.testing.assert_allclose(y.detach().numpy(), expected)
    assert isinstance(layer.neuron, BaseNeuron)
    assert layer.neuron.feature_shape == (4, )


def test_fclif_options():
    layer = FcLif(6, 4, bias=False, norm=True, dropout=0.5,
                  neuron=dict(type='LIF', param_shape='channel',
                              learnable=('theta', )))
    assert layer.linear.bias is None
    assert isinstance(layer.norm, nn.BatchNorm1d)
    assert layer.neuron.theta.shape == (4, )
    assert_forms_agree(layer, torch.randn(3, 2, 6))
    layer.train()
    y = layer(torch.randn(3, 2, 6))  # dropout + batch statistics run
    assert y.shape == (3, 2, 4)
    with pytest.raises(ConfigError, match='dropout'):
        FcLif(6, 4, dropout=1.0)
    with pytest.raises(ConfigError, match='FcLif'):
        layer(torch.randn(3, 2, 7))
    with pytest.raises(ConfigError, match='FcLif'):
        FcLif(0, 4)


def test_conv2dlif_follows_bidl_order_conv_pool_bn_lif():
    torch.manual_seed(2)
    layer = Conv2dLif(2, 3, kernel_size=3, padding=1, pool=2).eval()
    bn = layer.norm
    with torch.no_grad():
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.2, 0.2)
    x = torch.randn(4, 2, 2, 8, 8)
    flat = x.flatten(0, 1)
    z = F.conv2d(flat, layer.conv.weight, layer.conv.bias, padding=1)
    z = F.max_pool2d(z, 2)
    z = F.batch_norm(z, bn.running_mean, bn.running_var, bn.weight, bn.bias,
                     training=False, eps=bn.eps)
    expected = lif_loop(z.detach().reshape(4, 2, 3, 4, 4).numpy())
    y = assert_forms_agree(layer, x)
    assert y.shape == (4, 2, 3, 4, 4)
    np.testing.assert_allclose(y.detach().numpy(), expected)


@pytest.mark.parametrize('cls,shape,out', [
    (Conv1dLif, (3, 2, 2, 9), (3, 2, 4, 4)),
    (Conv2dLif, (3, 2, 2, 9, 9), (3, 2, 4, 4, 4)),
    (Conv3dLif, (3, 2, 2, 5, 5, 5), (3, 2, 4, 2, 2, 2)),
])
def test_conv_lif_shapes_and_forms(cls, shape, out):
    torch.manual_seed(3)
    layer = cls(2, 4, kernel_size=3, padding=1, pool=2,
                neuron=dict(type='LIF', param_shape='channel'))
    assert layer.neuron.alpha.shape == (4, ) + (1, ) * (len(shape) - 3)
    y = assert_forms_agree(layer, torch.randn(*shape) * 2)
    assert y.shape == out
    assert set(y.unique().tolist()) <= {0.0, 1.0}


def test_conv_lif_options_and_refusals():
    layer = Conv2dLif(3, 5, kernel_size=1, padding=0, norm=False, bias=False)
    assert layer.norm is None and layer.pool is None
    assert layer(torch.rand(2, 1, 3, 4, 4)).shape == (2, 1, 5, 4, 4)
    with pytest.raises(ConfigError, match='input channels'):
        layer(torch.rand(2, 1, 4, 4, 4))
    with pytest.raises(ConfigError, match='Conv2dLif'):
        layer(torch.rand(2, 3, 4, 4))
    with pytest.raises(ConfigError, match='feature_shape'):
        Conv2dLif(3, 5, neuron=dict(type='LIF', param_shape='neuron'))
    per_neuron = Conv2dLif(
        3, 5, neuron=dict(type='LIF', param_shape='neuron',
                          feature_shape=(5, 4, 4)))
    assert per_neuron.neuron.theta.shape == (5, 4, 4)
    assert_forms_agree(per_neuron, torch.rand(2, 2, 3, 4, 4))
    with pytest.raises(ConfigError, match='pool'):
        Conv2dLif(3, 5, pool=0)
    with pytest.raises(ConfigError, match='neuron'):
        Conv2dLif(3, 5, neuron=dict(type='Linear', in_features=1,
                                    out_features=1))


def test_lif1d_lif2d():
    torch.manual_seed(4)
    x = torch.rand(5, 2, 7) * 1.5
    layer = Lif1d(7)
    y = assert_forms_agree(layer, x)
    np.testing.assert_allclose(y.numpy(), lif_loop(x.numpy()))
    layer = Lif2d(3, neuron=dict(type='LIF', param_shape='channel',
                                 theta=0.8))
    assert layer.neuron.theta.shape == (3, 1, 1)
    x = torch.rand(5, 2, 3, 4, 4) * 1.5
    y = assert_forms_agree(layer, x)
    np.testing.assert_allclose(y.numpy(), lif_loop(x.numpy(), theta=0.8))
    with pytest.raises(ConfigError, match='Lif2d'):
        layer(torch.rand(5, 2, 3, 4))


@pytest.mark.parametrize('mode', ['mean', 'sum', 'last'])
def test_aggregation(mode):
    x = torch.arange(24, dtype=torch.float32).reshape(4, 2, 3)
    agg = Aggregation(mode)
    expected = {'mean': x.numpy().mean(0), 'sum': x.numpy().sum(0),
                'last': x.numpy()[3]}[mode]
    np.testing.assert_allclose(agg(x).numpy(), expected)
    state = None
    for t in range(4):
        y, state = agg.step(x[t], state)
        # after t+1 steps: the aggregate of the prefix
        torch.testing.assert_close(y, agg(x[:t + 1]))
    assert state['count'].item() == 4
    with pytest.raises(ConfigError, match='mode'):
        Aggregation('max')


def test_spiking_sequential_from_configs():
    torch.manual_seed(5)
    net = MODELS.build(dict(type='SpikingSequential', layers=[
        dict(type='Conv2dLif', in_channels=2, out_channels=4, pool=2),
        dict(type='Conv2dLif', in_channels=4, out_channels=4,
             neuron=dict(type='LIF', reset='soft', surrogate='atan')),
        dict(type='Flatten'),
        dict(type='Dropout', p=0.2),
        dict(type='FcLif', in_features=64, out_features=10),
        dict(type='Aggregation', mode='mean'),
    ]))
    assert isinstance(net[2], TimeFold) and isinstance(net[3], TimeFold)
    x = (torch.rand(6, 3, 2, 8, 8) > 0.7).float()
    y = assert_forms_agree(net, x)
    assert y.shape == (3, 10)
    state = net.step(x[0])[1]
    # one entry per stateful layer, under its index (the protocol of
    # bidl_train.utils.state); the Flatten, Dropout hold none
    assert list(state) == ['0', '1', '4', '5']


def test_spiking_sequential_of_modules_trains():
    torch.manual_seed(6)
    net = SpikingSequential(FcLif(5, 8), nn.ReLU(), Lif1d(8),
                            Aggregation('sum'))
    x = torch.rand(4, 3, 5) * 2
    net(x).sum().backward()
    assert net[0].linear.weight.grad is not None
    assert_forms_agree(net, x)


def test_spiking_sequential_refusals():
    with pytest.raises(ConfigError, match='hidden state'):
        SpikingSequential(nn.LSTM(3, 3))
    with pytest.raises(ConfigError, match='SpikingSequential\\[1\\]'):
        SpikingSequential(Lif1d(3), dict(type='NoSuchLayer'))
    net = SpikingSequential(Lif1d(3), Lif1d(3))
    with pytest.raises(ConfigError, match='keyed by layer index'):
        net.step(torch.rand(2, 3), [None])
    with pytest.raises(ConfigError,
                       match=r"entries \['2'\].*has 0, 1\)"):
        net.step(torch.rand(2, 3), {'2': None})


def test_forward_hook_on_neurons_sees_every_spike_tensor():
    net = SpikingSequential(
        Conv2dLif(2, 3, pool=2), nn.Flatten(), FcLif(3 * 4 * 4, 5),
        Lif1d(5), Aggregation())
    seen = []
    for module in net.modules():
        if isinstance(module, BaseNeuron):
            module.register_forward_hook(
                lambda m, i, o: seen.append(tuple(o.shape)))
    net(torch.rand(7, 2, 2, 8, 8) * 3)
    assert seen == [(7, 2, 3, 4, 4), (7, 2, 5), (7, 2, 5)]


def test_layers_registered():
    for name in ('TimeFold', 'FcLif', 'Conv1dLif', 'Conv2dLif', 'Conv3dLif',
                 'Lif1d', 'Lif2d', 'Aggregation', 'SpikingSequential', 'LIF'):
        assert MODELS.get(name) is not None, name
    layer = MODELS.build(dict(type='FcLif', in_features=3, out_features=2,
                              neuron=dict(type='LIF', alpha=0.9)))
    assert isinstance(layer.neuron, LIF) and layer.neuron.alpha.item() == \
        pytest.approx(0.9)


@pytest.mark.parametrize('neuron', [
    dict(type='ALIF', rho=0.8, beta_a=0.5),
    dict(type='CubaLIF', alpha_syn=0.6),
    dict(type='LIFPlus', input_accum='COBE', refractory='AR',
         adaptation='ADT', refractory_steps=2),
    dict(type='Izhikevich', preset='CH'),
    dict(type='LIF', kernel='torch'),
])
def test_layers_take_every_neuron_type_in_both_forms(neuron):
    torch.manual_seed(5)
    scale = 40.0 if neuron['type'] == 'Izhikevich' else 1.0
    conv = Conv2dLif(2, 4, neuron=dict(neuron, param_shape='channel'))
    fc = FcLif(6, 3, neuron=dict(neuron, param_shape='neuron'))
    with torch.no_grad():
        conv.conv.weight.mul_(scale)
        fc.linear.weight.mul_(scale)
    assert_forms_agree(conv, torch.rand(6, 2, 2, 5, 5))
    assert_forms_agree(fc, torch.rand(6, 2, 6))
    assert fc.neuron.feature_shape == (3, )
