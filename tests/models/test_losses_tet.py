"""The TET loss (Deng et al., 2022) against a value computed by hand."""
import math

import pytest
import torch

from bidl_train.errors import ConfigError
from bidl_train.models.heads import SpikingClsHead


def _identity_head(loss):
    """A head whose readout passes the features through, so feats = logits."""
    head = SpikingClsHead(2, 2, per_step_loss=True, loss=loss)
    with torch.no_grad():
        head.fc.weight.copy_(torch.eye(2))
        head.fc.bias.zero_()
    return head


def test_tet_loss_matches_hand_computed_value():
    # two steps, one sample of class 0: logits (0, 0), then (ln 3, 0)
    feats = torch.tensor([[[0.0, 0.0]], [[math.log(3.0), 0.0]]])
    head = _identity_head(dict(type='TETLoss', lamb=0.5, phi=1.0))
    loss = head.loss(feats, torch.tensor([0]))['loss']
    # step 1: CE = ln 2 (two equal logits); MSE to 1 = ((0-1)^2 + (0-1)^2)/2
    step1 = 0.5 * math.log(2.0) + 0.5 * 1.0
    # step 2: CE = -ln(3 / (3 + 1)); MSE = ((ln 3 - 1)^2 + (0 - 1)^2) / 2
    step2 = 0.5 * math.log(4.0 / 3.0) + \
        0.5 * ((math.log(3.0) - 1.0) ** 2 + 1.0) / 2
    assert loss.item() == pytest.approx((step1 + step2) / 2, rel=1e-6)


def test_tet_loss_without_regulariser_is_per_step_cross_entropy():
    feats = torch.tensor([[[0.0, 0.0]], [[math.log(3.0), 0.0]]])
    head = _identity_head(dict(type='TETLoss', lamb=0.0))
    loss = head.loss(feats, torch.tensor([0]))['loss']
    expected = (math.log(2.0) + math.log(4.0 / 3.0)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize('lamb', [-0.1, 1.5, True, 'a'])
def test_tet_loss_refuses_weight_outside_unit_interval(lamb):
    with pytest.raises(ConfigError, match='TETLoss: lamb'):
        _identity_head(dict(type='TETLoss', lamb=lamb))
