"""Plastic layers: both execution forms agree, the local weight follows a
reference written step by step with plain tensors, fast weights are
differentiable, persistent weights persist."""
import pytest
import torch
import torch.nn.functional as F

from bidl_train.errors import ConfigError
from bidl_train.learning import PlasticConv2dLif, PlasticFcLif
from bidl_train.models.heads import PopulationClsHead
from bidl_train.learning.teacher import teaching
from bidl_train.registry import MODELS


def spikes(*shape, p=0.5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=gen) < p).double()


def run_steps(layer, x_seq):
    state, outs = None, []
    for x_t in x_seq:
        y, state = layer.step(x_t, state)
        outs.append(y)
    return torch.stack(outs), state


NEURON = dict(type='LIF', alpha=0.5, theta=0.3)


def test_fc_persistent_reference_loop():
    """The layer equals a hand-written loop: I = W x + b + L x, LIF,
    Hebbian ΔL = η mean_b(y ⊗ x), L ← clamp((1-δ) L + ΔL)."""
    torch.manual_seed(0)
    layer = PlasticFcLif(4, 3, rule=dict(type='Hebbian', lr=0.2, w_max=0.3,
                                         w_min=-0.3),
                         decay=0.1, neuron=NEURON).double().train()
    with torch.no_grad():  # excitatory weights so that the layer fires
        layer.linear.weight.abs_()
    x = spikes(5, 2, 4)
    y = layer(x)
    W, b = layer.linear.weight.detach(), layer.linear.bias.detach()
    L = torch.zeros(3, 4, dtype=torch.float64)
    v = torch.zeros(2, 3, dtype=torch.float64)
    for t in range(5):
        u = x[t] @ W.t() + b + x[t] @ L.t() + v
        s = (u > 0.3).double()
        v = 0.5 * (1 - s) * u
        assert torch.equal(y[t], s)
        L = ((1 - 0.1) * L + 0.2 * (s.t() @ x[t]) / 2).clamp(-0.3, 0.3)
    assert torch.allclose(layer.local_weight, L)
    assert layer.local_weight.abs().sum() > 0


@pytest.mark.parametrize('plasticity', ['fast', 'persistent'])
@pytest.mark.parametrize('rule', [
    dict(type='STDP', lr=0.3, w_min=-1.0, w_max=1.0),
    dict(type='BCM', lr=0.3, post_decay=0.5),
    dict(type='Oja', lr=0.2, pre_decay=0.3),
])
def test_fc_both_forms_agree(plasticity, rule):
    layer = PlasticFcLif(6, 4, rule=rule, plasticity=plasticity,
                         neuron=NEURON).double()
    layer.learning = True
    x = spikes(7, 3, 6, seed=1)
    start = {k: v.clone() for k, v in layer.local_state_dict().items()}
    y_multi = layer(x)
    after = {k: v.clone() for k, v in layer.local_state_dict().items()}
    for key, value in start.items():  # step form starts from the same L
        getattr(layer, key).copy_(value)
    y_step, state = run_steps(layer, x)
    assert torch.equal(y_multi, y_step)
    if plasticity == 'persistent':
        # the step form carries L in its state and leaves the buffers alone
        for key, value in start.items():
            assert torch.equal(getattr(layer, key), value)
        assert torch.allclose(state['local'], after['local_weight'])
        layer.commit(state)
        for key, value in after.items():
            assert torch.allclose(getattr(layer, key), value)
    else:
        assert state['local'].shape == (3, 4, 6)  # per sample


@pytest.mark.parametrize('plasticity', ['fast', 'persistent'])
def test_conv_both_forms_agree(plasticity):
    layer = PlasticConv2dLif(2, 3, kernel_size=3, padding=1, pool=2,
                             rule=dict(type='STDP', lr=0.2),
                             plasticity=plasticity, neuron=NEURON).double()
    layer.eval()  # BatchNorm on running statistics
    layer.learning = True
    x = spikes(4, 2, 2, 7, 7, seed=2)
    start = layer.local_state_dict().get('local_weight')
    start = None if start is None else start.clone()
    y_multi = layer(x)
    if start is not None:
        learned = layer.local_weight.clone()
        layer.local_weight.copy_(start)
    y_step, state = run_steps(layer, x)
    assert y_multi.shape == (4, 2, 3, 3, 3)
    assert torch.equal(y_multi, y_step)
    if start is not None:
        assert torch.allclose(state['local'], learned)
        assert learned.abs().sum() > 0


def test_conv_local_weight_reference():
    """Conv plasticity against a reference: unfold the input, credit each
    pooled spike to its 2x2 window, Hebbian mean over positions."""
    layer = PlasticConv2dLif(1, 2, kernel_size=3, padding=1, pool=2,
                             norm=False, rule=dict(type='Hebbian', lr=0.5),
                             neuron=NEURON).double().train()
    x = spikes(1, 1, 1, 4, 4, seed=3)
    y = layer(x)[0, 0]  # [2, 2, 2]
    patches = F.unfold(x[0], 3, padding=1)[0]  # [9, 16 positions]
    post = torch.zeros(2, 16, dtype=torch.float64)
    for o in range(2):
        for r in range(4):
            for c in range(4):
                post[o, r * 4 + c] = y[o, r // 2, c // 2]
    expected = 0.5 * post @ patches.t() / 16
    assert torch.allclose(layer.local_weight, expected)


def test_fast_weights_reset_per_sample_and_are_differentiable():
    layer = PlasticFcLif(5, 3, rule=dict(type='Hebbian', lr=0.5),
                         plasticity='fast', learn_coefficients=True,
                         decay=0.1, neuron=NEURON).double()
    x = spikes(6, 2, 5, seed=4)
    y1 = layer(x)
    y2 = layer(x)
    assert torch.equal(y1, y2)  # nothing carried over between calls
    # sample 0's output does not depend on sample 1 (per-sample weights)
    alone = layer(x[:, :1])
    assert torch.equal(alone[:, 0], y1[:, 0])
    y1.sum().backward()
    assert layer.rule.lr.grad is not None and layer.decay.grad is not None
    assert layer.linear.weight.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="plasticity='fast'"):
        PlasticFcLif(2, 2, plasticity='persistent', learn_coefficients=True)


def test_persistent_learning_switches():
    layer = PlasticFcLif(4, 2, rule=dict(type='Hebbian', lr=0.5),
                         neuron=NEURON).double()
    x = torch.ones(3, 2, 4, dtype=torch.float64)
    layer.eval()
    layer(x)
    assert layer.local_weight.abs().sum() == 0  # eval: no learning
    layer.train()
    layer(x)
    learned = layer.local_weight.clone()
    assert learned.abs().sum() > 0
    layer.learning = False
    layer(x)
    assert torch.equal(layer.local_weight, learned)
    state = layer.state_dict()
    assert 'local_weight' in state  # checkpointed
    layer.reset_local()
    assert layer.local_weight.abs().sum() == 0


def _silent_reward_layer():
    layer = PlasticFcLif(3, 4, rule=dict(type='RewardSTDP', num_classes=2,
                                         group_size=2, lr=0.5,
                                         pre_eligibility=1.0),
                         learning=True, neuron=NEURON).double()
    with torch.no_grad():  # a silent layer: rates 0, rewards (1, 0)
        layer.linear.weight.zero_()
        layer.linear.bias.zero_()
    return layer


def _rewarded_first_group(local_weight):
    # the true class's silent group is rewarded: with b = 1, λ_pre = 0.5
    # its weights grow by lr * 1 * x̄ per step; the other group is silent
    # and unrewarded (R = 0 - 0): unchanged
    return bool((local_weight[:2] > 0).all()) and torch.equal(
        local_weight[2:], torch.zeros(2, 3, dtype=torch.float64))


def test_reward_rule_needs_teacher_in_layer():
    layer = _silent_reward_layer()
    x = torch.ones(2, 2, 3, dtype=torch.float64)
    layer(x)
    assert layer.local_weight.abs().sum() == 0  # no labels: gate closed
    with teaching([0, 0]):
        layer(x)
    assert _rewarded_first_group(layer.local_weight)
    # the labels lived as long as the block: none afterwards
    before = layer.local_weight.clone()
    layer(x)
    assert torch.equal(layer.local_weight, before)


def test_reward_rule_teacher_by_step_argument():
    """The single-step form takes the labels as an argument; it matches the
    multi-step form under ``teaching``."""
    x = torch.ones(2, 2, 3, dtype=torch.float64)
    stepped = _silent_reward_layer()
    state = None
    for x_t in x:
        _, state = stepped.step(x_t, state, teacher=torch.tensor([0, 0]))
    assert _rewarded_first_group(state['local'])
    unlabelled = _silent_reward_layer()
    _, state = unlabelled.step(x[0], None, teacher=torch.tensor([-1, -1]))
    assert state['local'].abs().sum() == 0  # label -1: no reward


def test_classifier_teaches_with_the_labels_of_training_batches():
    """Labels travel in ``data_samples``: the training forward teaches the
    plastic layer; predict and tensor forwards never do."""
    model = MODELS.build(dict(
        type='SpikingClassifier',
        backbone=dict(type='SpikingSequential', layers=[
            dict(type='PlasticFcLif', in_features=3, out_features=4,
                 learning=True, neuron=NEURON,
                 rule=dict(type='RewardSTDP', num_classes=2, group_size=2,
                           lr=0.5, pre_eligibility=1.0))]),
        head=dict(type='PopulationClsHead', num_classes=2,
                  group_size=2))).double()
    layer = model.backbone[0]
    with torch.no_grad():
        layer.linear.weight.zero_()
        layer.linear.bias.zero_()
    x = torch.ones(2, 2, 3, dtype=torch.float64)
    samples = dict(label=torch.tensor([0, 0]))
    model(x, samples, mode='predict')
    model(x, mode='tensor')
    assert layer.local_weight.abs().sum() == 0
    model(x, samples, mode='loss')
    assert _rewarded_first_group(layer.local_weight)


def test_layer_config_errors_name_the_layer():
    with pytest.raises(ConfigError, match='PlasticFcLif: plasticity'):
        PlasticFcLif(2, 2, plasticity='slow')
    with pytest.raises(ConfigError, match='PlasticFcLif: unknown rule'):
        PlasticFcLif(2, 2, rule=dict(type='Nope'))
    with pytest.raises(ConfigError, match='PlasticConv2dLif: decay'):
        PlasticConv2dLif(1, 1, decay=2.0)
    layer = PlasticFcLif(3, 2)
    with pytest.raises(ConfigError, match='expected 3 input features'):
        layer(torch.zeros(2, 1, 4))


def test_population_head_and_registry():
    head = MODELS.build(dict(type='PopulationClsHead', num_classes=2,
                             group_size=2, scale=4.0))
    feats = torch.tensor([[[1., 0., 0., 0.]], [[1., 1., 0., 1.]]])  # [T=2]
    # group rates over T and the group: class 0 (1+0 + 1+1)/4 = 0.75,
    # class 1 (0+0 + 0+1)/4 = 0.25; times scale 4
    assert torch.allclose(head(feats), torch.tensor([[3.0, 1.0]]))
    state, out = None, None
    for x_t in feats:
        out, state = head.step(x_t, state)
    assert torch.allclose(out, head(feats))
    assert isinstance(MODELS.build(dict(type='PlasticFcLif', in_features=2,
                                        out_features=2)), PlasticFcLif)
    with pytest.raises(ConfigError, match='num_classes \\* group_size'):
        head(torch.zeros(1, 1, 3))
    assert isinstance(head, PopulationClsHead)
