"""MACs, SynOps, energy and memory against hand-computed counts."""
import pytest
import torch
from torch import nn

from bidl_train.evaluation.complexity import (E_AC_PJ, E_MAC_PJ,
                                              count_complexity,
                                              measure_training_memory)


class _Heaviside(nn.Module):

    def forward(self, x):
        return (x > 0).float()


class _Tiny(nn.Module):
    """conv3x3 (1 -> 2, pad 1, weights 1) -> spikes -> flatten -> fc 32->3."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1, bias=False)
        self.fire = _Heaviside()
        self.fc = nn.Linear(32, 3)
        nn.init.ones_(self.conv.weight)

    def forward(self, x_seq):
        x = x_seq.flatten(0, 1)
        return self.fc(self.fire(self.conv(x)).flatten(1))


def _two_spikes():
    x = torch.zeros(1, 1, 1, 4, 4)  # T=1, B=1
    x[0, 0, 0, 0, 0] = 1  # corner: covered by a 2x2 block of windows
    x[0, 0, 0, 1, 1] = 1  # interior: covered by 3x3 windows
    return x


def test_hand_counts_tiny_network():
    report = count_complexity(_Tiny().eval(), [_two_spikes()])
    conv, fc = report['layers']['conv'], report['layers']['fc']
    # ANN MACs: 2*4*4 outputs x 9 inputs; 3 outputs x 32 inputs
    assert conv['macs'] == 288
    assert fc['macs'] == 96
    # SynOps: corner spike reaches 4 positions x 2 channels, interior 9 x 2
    assert conv['synops'] == 4 * 2 + 9 * 2
    # after the threshold: the union of the two windows = 9 positions x 2
    # channels spike, each reaching 3 outputs
    assert fc['synops'] == 9 * 2 * 3
    assert conv['input_rate'] == pytest.approx(2 / 16)
    assert fc['input_rate'] == pytest.approx(18 / 32)
    total = report['total']
    assert total['synops'] == 26 + 54
    assert total['energy_pj'] == pytest.approx(E_AC_PJ * 80)
    assert total['ann_energy_pj'] == pytest.approx(E_MAC_PJ * 384)
    assert total['params'] == 2 * 9 + 32 * 3 + 3


def test_counts_are_per_sample():
    x = torch.cat([_two_spikes(), torch.zeros(1, 1, 1, 4, 4)], dim=1)
    total = count_complexity(_Tiny().eval(), [x, x])['total']
    assert total['samples'] == 4
    assert total['synops'] == pytest.approx(80 / 2)  # one sample of two
    assert total['macs'] == 384  # dense cost does not depend on the data


def test_strided_conv_fan_out_includes_borders():
    conv = nn.Conv2d(1, 1, 3, stride=2, padding=1, bias=False)
    x = torch.zeros(1, 1, 1, 4, 4)
    x[..., 1, 1] = 1  # inside all four 3x3/2 windows
    x[..., 0, 0] = 1  # inside the first window only
    report = count_complexity(conv, [x], forward=lambda m, s: m(s[0]))
    assert report['layers']['']['synops'] == 4 + 1
    assert report['layers']['']['macs'] == 4 * 9


def test_analog_input_is_charged_dense_macs():
    x = torch.zeros(1, 1, 1, 4, 4)
    x[..., 2, 2] = 0.5
    layer = count_complexity(_Tiny().eval(), [x])['layers']['conv']
    assert not layer['spiking_input']
    assert layer['synops'] == 0
    assert layer['energy_pj'] == pytest.approx(E_MAC_PJ * 288)


def test_sew_add_counts_are_weighted():
    fc = nn.Linear(2, 5)
    x = torch.tensor([[[2.0, 1.0]]])  # one sample: 3 spikes in total
    report = count_complexity(fc, [x], forward=lambda m, s: m(s[0]))
    assert report['layers']['']['synops'] == 3 * 5


def test_training_memory_scales_with_batch_and_counts_state():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    small = measure_training_memory(model, torch.rand(2, 2, 4), 8,
                                    loss_fn=lambda m, x: m(x).sum())
    large = measure_training_memory(model, torch.rand(2, 8, 4), 8,
                                    loss_fn=lambda m, x: m(x).sum())
    params = (4 * 8 + 8 + 8 * 3 + 3) * 4
    assert small['parameters'] == params == small['gradients']
    assert small['optimizer_state'] == 2 * params
    assert small['activations'] > 0
    # saved: the input x (T*B*4 floats) and the ReLU output (T*B*8
    # floats, shared by ReLU's and the second Linear's backward); the
    # weights are parameters, counted apart
    assert small['activations'] == pytest.approx((2 * 2 * 4 + 2 * 2 * 8) *
                                                 4 * 8 / 2)
    assert small['activations'] == pytest.approx(large['activations'])
    assert small['total'] == small['activations'] + 4 * params
    # one sample sliced from a larger batch: a view of its whole storage,
    # which must not be counted (it was, times batch_size: 4x too much on
    # the gesture demo)
    batch = torch.rand(2, 16, 4)
    sliced, copied = (
        measure_training_memory(model, x, 8, loss_fn=lambda m, x: m(x).sum())
        for x in (batch[:, :1], batch[:, :1].clone()))
    assert sliced['activations'] == pytest.approx(copied['activations'])
    assert sliced['activations'] == pytest.approx(small['activations'])
