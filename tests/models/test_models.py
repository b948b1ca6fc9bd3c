"""The classifier, its head and data preprocessor, and the firing monitor."""
import pytest
import torch
from mmengine.registry import init_default_scope

from bidl_train.errors import ConfigError
from bidl_train.models import SpikingClassifier, SpikingDataPreprocessor
from bidl_train.models.heads import SpikingClsHead
from bidl_train.models.monitor import record_firing_rates
from bidl_train.registry import MODELS

init_default_scope('bidl_train')


def tiny_classifier(num_classes=3, aggregation='mean'):
    return SpikingClassifier(
        backbone=dict(
            type='ConvLifNet',
            in_channels=2,
            input_size=8,
            channels=(4, 4),
            pools=(2, 2),
            fc=(6, ),
            neuron=dict(type='LIF', theta=0.2)),
        head=dict(
            type='SpikingClsHead',
            in_features=6,
            num_classes=num_classes,
            aggregation=aggregation))


def test_preprocessor_moves_time_to_front_and_keeps_extras():
    pre = SpikingDataPreprocessor()
    x = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4)
    out = pre(dict(inputs=x, label=torch.tensor([1, 0]),
                   length=torch.tensor([3, 2])))
    assert out['inputs'].shape == (3, 2, 4)
    # sample b, step t in the batch is step t, sample b inside the network
    assert torch.equal(out['inputs'][2, 1], x[1, 2])
    assert out['data_samples']['label'].tolist() == [1, 0]
    assert out['data_samples']['length'].tolist() == [3, 2]


def test_preprocessor_rejects_non_dict_batches():
    with pytest.raises(ConfigError, match='default_collate'):
        SpikingDataPreprocessor()([torch.zeros(1)])


@pytest.mark.parametrize('aggregation', ['mean', 'sum', 'last'])
def test_head_aggregation_and_step_form(aggregation):
    torch.manual_seed(0)
    head = SpikingClsHead(5, 3, aggregation=aggregation)
    feats = torch.randn(4, 2, 5)
    per_step = feats @ head.fc.weight.T + head.fc.bias  # [T, B, C] by hand
    expected = {'mean': per_step.mean(0), 'sum': per_step.sum(0),
                'last': per_step[-1]}[aggregation]
    assert torch.allclose(head(feats), expected, atol=1e-6)
    state = None
    for t in range(4):
        out, state = head.step(feats[t], state)
    assert torch.allclose(out, expected, atol=1e-6)


def test_head_per_step_loss_is_mean_of_step_losses():
    torch.manual_seed(0)
    head = SpikingClsHead(5, 3, per_step_loss=True)
    feats, labels = torch.randn(4, 2, 5), torch.tensor([0, 2])
    logits = head.step_logits(feats)
    expected = sum(
        torch.nn.functional.cross_entropy(logits[t], labels)
        for t in range(4)) / 4
    assert torch.allclose(head.loss(feats, labels)['loss'], expected)


def test_head_refuses_unknown_aggregation():
    with pytest.raises(ConfigError, match='aggregation'):
        SpikingClsHead(5, 3, aggregation='max')


def test_classifier_modes_and_step_form_agree():
    torch.manual_seed(0)
    model = tiny_classifier().eval()
    x = torch.rand(5, 2, 2, 8, 8) * 2  # [T, B, C, H, W]
    logits = model(x, mode='tensor')
    assert logits.shape == (2, 3)
    state = None
    for t in range(5):
        step_logits, state = model.step(x[t], state)
    assert torch.allclose(step_logits, logits, atol=1e-5)
    preds = model(x, dict(label=torch.tensor([2, 0])), mode='predict')
    assert [p['gt_label'] for p in preds] == [2, 0]
    for p, row in zip(preds, logits):
        assert p['pred_label'] == int(row.argmax())
        assert torch.allclose(p['pred_score'], row.softmax(0), atol=1e-6)
        assert set(p['firing_rates']) == {
            'backbone.layers.0.neuron', 'backbone.layers.1.neuron',
            'backbone.layers.3.neuron'
        }


def test_classifier_loss_backpropagates_to_first_layer():
    torch.manual_seed(0)
    model = tiny_classifier().train()
    x = torch.rand(4, 2, 2, 8, 8) * 2
    loss = model(x, dict(label=torch.tensor([1, 2])), mode='loss')['loss']
    loss.backward()
    first_conv = model.backbone.layers[0].conv.weight
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0


def test_classifier_without_labels_refuses_loss():
    model = tiny_classifier()
    with pytest.raises(ConfigError, match='label'):
        model(torch.rand(2, 1, 2, 8, 8), None, mode='loss')


def test_record_firing_rates_matches_hand_count():
    # a lone LIF with theta 0.5 driven by constant input 0.6 fires every
    # step (u = 0.6 > 0.5, hard reset to 0, leak keeps 0); input 0.1 never
    # reaches threshold in 4 steps: 0.1, 0.13, 0.139, 0.1417 (alpha 0.3)
    lif = MODELS.build(dict(type='LIF'))
    x = torch.tensor([0.6, 0.1]).reshape(1, 2, 1).expand(4, 2, 1)
    with record_firing_rates(lif) as rates:
        lif(x)
    assert rates[''].tolist() == [1.0, 0.0]
    # the hooks are gone after the block
    assert not lif._forward_hooks


def test_single_logit_classifier_predicts_by_sigmoid_threshold():
    torch.manual_seed(0)
    model = SpikingClassifier(
        backbone=dict(type='ConvLifNet', in_channels=2, input_size=8,
                      channels=(4, ), pools=(2, ), fc=(6, )),
        head=dict(type='SpikingClsHead', in_features=6, num_classes=1,
                  loss=dict(type='BCEWithLogitsLoss'))).eval()
    x = torch.rand(3, 4, 2, 8, 8) * 2
    logit = model(x, mode='tensor')[:, 0]
    preds = model(x, dict(label=torch.tensor([0, 1, 0, 1])), mode='predict')
    for p, z in zip(preds, logit):
        prob = 1 / (1 + torch.exp(-z))
        assert p['pred_label'] == int(prob > 0.5)
        assert torch.allclose(p['pred_score'], torch.stack([1 - prob, prob]),
                              atol=1e-6)
    loss = model(x, dict(label=torch.tensor([0, 1, 0, 1])), mode='loss')
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        logit, torch.tensor([0., 1., 0., 1.]))
    assert torch.allclose(loss['loss'], expected, atol=1e-6)


def test_plastic_layers_report_firing_rates():
    from bidl_train.learning import PlasticFcLif
    layer = PlasticFcLif(3, 2, rule=dict(type='Hebbian', lr=0.0),
                         neuron=dict(type='LIF', theta=0.5))
    with torch.no_grad():
        layer.linear.weight.copy_(
            torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
        layer.linear.bias.zero_()
    x = torch.tensor([1.0, 0.0, 0.0]).expand(4, 1, 3)  # [T, B, N]
    with record_firing_rates(torch.nn.Sequential(layer)) as rates:
        layer_out = layer(x)
    # neuron 0 gets input 1 > 0.5 every step (fires, hard reset to 0),
    # neuron 1 gets 0: the layer's rate is (4 + 0) / (4 * 2) = 0.5
    assert list(rates) == ['0']
    assert rates['0'].tolist() == [pytest.approx(0.5)]
    assert layer_out.shape == (4, 1, 2)


def test_soft_labels_from_mixing_drive_the_loss():
    torch.manual_seed(0)
    model = tiny_classifier().train()
    x = torch.rand(4, 2, 2, 8, 8) * 2
    soft = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.4, 0.6]])
    logits = model.head.aggregate(model.head.step_logits(
        model.extract_feat(x)))
    expected = -(soft * logits.log_softmax(1)).sum(1).mean()
    loss = model(x, dict(label=torch.tensor([0, 2]), soft_label=soft),
                 mode='loss')['loss']
    assert torch.allclose(loss, expected, atol=1e-5)
    batch = SpikingDataPreprocessor()(dict(
        inputs=torch.zeros(2, 4, 1), label=torch.tensor([0, 2]),
        soft_label=soft))
    assert torch.equal(batch['data_samples']['soft_label'], soft)


def test_conv_lif_net_pools_the_synaptic_current_or_the_output():
    """pool_position='synapse' pools inside Conv2dLif (the neurons see the
    pooled current); 'output' pools the layer's output after the neurons,
    which run at full resolution (BIDL's clif3fc3 / clif5fc2cd)."""
    from bidl_train.layers import Conv2dLif, TimeFold
    from bidl_train.models.backbones import ConvLifNet
    torch.manual_seed(0)
    kw = dict(in_channels=2, input_size=8, channels=(4, ), pools=(2, ),
              fc=(), norm=False, neuron=dict(type='LIF', mode='analog'))
    inner = ConvLifNet(pool_position='synapse', **kw)
    outer = ConvLifNet(pool_position='output', **kw)
    outer.load_state_dict(inner.state_dict())
    conv = inner.layers[0]
    assert isinstance(conv, Conv2dLif) and conv.pool is not None
    assert outer.layers[0].pool is None
    assert isinstance(outer.layers[1], TimeFold)
    x = torch.rand(3, 2, 2, 8, 8) * 2
    # by hand: neuron on the unpooled current, then a 2x2 max-pool
    current = conv.conv(x.flatten(0, 1)).unflatten(0, (3, 2))
    by_hand = torch.nn.functional.max_pool2d(
        conv.neuron(current).flatten(0, 1), 2).flatten(1).unflatten(0, (3, 2))
    assert torch.allclose(outer(x), by_hand, atol=1e-6)
    pooled_first = conv.neuron(torch.nn.functional.max_pool2d(
        current.flatten(0, 1), 2).unflatten(0, (3, 2))).flatten(2)
    assert torch.allclose(inner(x), pooled_first, atol=1e-6)
    # same shapes either way; the single-step form agrees with the sequence
    assert outer(x).shape == inner(x).shape == (3, 2, 4 * 4 * 4)
    state, steps = None, []
    for t in range(3):
        y, state = outer.step(x[t], state)
        steps.append(y)
    assert torch.allclose(torch.stack(steps), outer(x), atol=1e-6)
    with pytest.raises(ConfigError, match='pool_position'):
        ConvLifNet(pool_position='after', **kw)


def test_predicted_label_is_none_for_nan_or_tied_scores():
    """argmax would name class 0 for a NaN row and for a tie; a sample with
    no decided prediction gets NO_PREDICTION (-1), so hooks that look for
    misclassified samples count it as wrong."""
    from bidl_train.models.classifiers import NO_PREDICTION, _predicted_label
    assert _predicted_label(torch.tensor([0.1, 0.7, 0.2])) == 1
    assert _predicted_label(torch.tensor([float('nan'), 0.5, 0.5])) == \
        NO_PREDICTION
    assert _predicted_label(torch.tensor([0.4, 0.4, 0.2])) == NO_PREDICTION
    assert _predicted_label(torch.tensor([0.2, float('inf'), 0.0])) == \
        NO_PREDICTION
    model = tiny_classifier().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float('nan'))
    preds = model(torch.rand(3, 2, 2, 8, 8), dict(label=torch.tensor([0, 1])),
                  mode='predict')
    assert [p['pred_label'] for p in preds] == [NO_PREDICTION] * 2
