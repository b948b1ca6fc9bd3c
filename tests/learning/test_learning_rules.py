"""Local rules against hand-computed updates.

Every expected value below is worked out by hand from the rule's equations
(written in the comments), on 1-2 inputs and 1-2 outputs, or by a plain
per-synapse loop written independently of the vectorised rule.
"""
import pytest
import torch

from bidl_train.errors import ConfigError
from bidl_train.learning import BCM, STDP, Hebbian, Oja, RewardSTDP
from bidl_train.learning.rules import build_rule


def t(values):
    return torch.tensor(values, dtype=torch.float64)


def fc(pre, post):
    """[N, I], [N, O] -> [N, 1, I], [N, 1, O] (one position)."""
    return t(pre).unsqueeze(1), t(post).unsqueeze(1)


def run(rule, steps, weight, teacher=None):
    """Apply a rule over a list of (pre, post) steps; returns every dW."""
    state, deltas = None, []
    for pre, post in steps:
        pre, post = fc(pre, post)
        if state is None:
            state = rule.init_state(pre, post, weight.dim() == 2)
        dw, state = rule.delta(pre, post, weight, state, teacher)
        deltas.append(dw)
    return deltas, state


def test_hebbian_traces_by_hand():
    # lr 0.5, λ_pre 0.5, λ_post 0 ; one sample, I = 2, O = 1
    rule = Hebbian(lr=0.5, pre_decay=0.5, post_decay=0.0).double()
    w = torch.zeros(1, 2, dtype=torch.float64)
    # step 0: x = (1, 0), y = 0 -> x̄ = (1, 0), ȳ = 0 -> dW = 0
    # step 1: x = (0, 1), y = 1 -> x̄ = (0.5, 1), ȳ = 1 -> dW = 0.5*(0.5, 1)
    deltas, _ = run(rule, [([[1, 0]], [[0]]), ([[0, 1]], [[1]])], w)
    assert torch.equal(deltas[0], t([[0.0, 0.0]]))
    assert torch.allclose(deltas[1], t([[0.25, 0.5]]))


def test_hebbian_batch_mean_and_weight_decay():
    # shared weight: mean over the 2 samples; γ = 0.1 pulls W towards 0
    rule = Hebbian(lr=1.0, weight_decay=0.1).double()
    w = t([[1.0, -2.0]])
    # sample 0: y=1, x=(1,1) -> (1, 1); sample 1: y=0 -> 0; mean (0.5, 0.5)
    deltas, _ = run(rule, [([[1, 1], [1, 0]], [[1], [0]])], w)
    assert torch.allclose(deltas[0], t([[0.5 - 0.1, 0.5 + 0.2]]))


def test_hebbian_per_sample_weight_keeps_samples_apart():
    rule = Hebbian(lr=1.0).double()
    w = torch.zeros(2, 1, 2, dtype=torch.float64)  # [N, O, I]
    deltas, _ = run(rule, [([[1, 1], [1, 0]], [[1], [1]])], w)
    assert torch.allclose(deltas[0], t([[[1.0, 1.0]], [[1.0, 0.0]]]))


def test_oja_by_hand_and_normalises():
    rule = Oja(lr=0.1).double()
    w = t([[0.6, 0.8]])
    # y = 2, x = (1, 3): dW = 0.1 * (y x - y^2 W) = 0.1*((2, 6) - 4*(0.6, 0.8))
    deltas, _ = run(rule, [([[1, 3]], [[2]])], w)
    assert torch.allclose(deltas[0], t([[0.1 * (2 - 2.4), 0.1 * (6 - 3.2)]]))
    # iterate with y = W x on a fixed input: |W| -> 1, W -> x / |x|
    w = t([[0.3, 0.1]])
    x = t([3.0, 4.0])
    for _ in range(300):
        y = (w @ x).reshape(1, 1)
        dw, _ = rule.delta(x.reshape(1, 1, 2), y.reshape(1, 1, 1), w,
                           rule.init_state(x.reshape(1, 1, 2),
                                           y.reshape(1, 1, 1), True))
        w = w + 0.05 * dw
    assert torch.allclose(w.norm(), torch.tensor(1.0, dtype=w.dtype),
                          atol=1e-3)
    assert torch.allclose(w[0], x / x.norm(), atol=1e-3)


def test_stdp_additive_pairs_by_hand():
    # λ = 0.5 for both traces, A+ = 1, A- = 0.5, lr = 1; I = 1, O = 1
    rule = STDP(lr=1.0, a_plus=1.0, a_minus=0.5, pre_decay=0.5,
                post_decay=0.5).double()
    w = torch.zeros(1, 1, dtype=torch.float64)
    # t0: pre spike          -> x̄=1, no post -> LTP 0; ȳ_prev = 0 -> LTD 0
    # t1: post spike         -> x̄=0.5: LTP = 0.5 ; pre 0 -> LTD 0
    # t2: pre spike          -> LTD = A- * λ*ȳ_1 = 0.5*0.5*1 = 0.25
    #     (x̄_2 = 0.5 * 0.5 + 1 = 1.25, ȳ_2 = 0.5 * 1 = 0.5)
    # t3: pre + post together-> x̄_3 = 0.5 * 1.25 + 1 = 1.625: LTP 1.625
    #                           LTD = 0.5 * (0.5 * ȳ_2) * 1 = 0.125
    steps = [([[1]], [[0]]), ([[0]], [[1]]), ([[1]], [[0]]),
             ([[1]], [[1]])]
    deltas, _ = run(rule, steps, w)
    got = [d.item() for d in deltas]
    assert got == pytest.approx([0.0, 0.5, -0.25, 1.625 - 0.125])


def test_stdp_matches_spike_time_loop():
    """All-to-all pairing: the total change equals the sum over every
    (pre, post) spike pair of A+ λ^(t_post-t_pre) (t_pre <= t_post) or
    -A- λ^(t_pre-t_post) (t_post < t_pre), computed by a direct loop."""
    torch.manual_seed(0)
    steps, n_in, n_out, lam = 12, 3, 2, 0.6
    pre = (torch.rand(steps, 1, n_in) < 0.4).double()
    post = (torch.rand(steps, 1, n_out) < 0.4).double()
    rule = STDP(lr=1.0, a_plus=0.7, a_minus=0.4, pre_decay=lam,
                post_decay=lam).double()
    w = torch.zeros(n_out, n_in, dtype=torch.float64)
    total = torch.zeros_like(w)
    state = None
    for k in range(steps):
        x, y = pre[k].unsqueeze(1), post[k].unsqueeze(1)
        state = state or rule.init_state(x, y, True)
        dw, state = rule.delta(x, y, w, state)
        total += dw
    expected = torch.zeros_like(w)
    for o in range(n_out):
        for i in range(n_in):
            for tp in range(steps):
                for tq in range(steps):
                    if pre[tp, 0, i] and post[tq, 0, o]:
                        if tp <= tq:
                            expected[o, i] += 0.7 * lam**(tq - tp)
                        else:
                            expected[o, i] -= 0.4 * lam**(tp - tq)
    assert torch.allclose(total, expected)


def test_stdp_multiplicative_soft_bounds():
    rule = STDP(lr=1.0, a_plus=1.0, a_minus=1.0, pre_decay=0.0,
                post_decay=1.0, weight_dependence='multiplicative',
                w_min=0.0, w_max=1.0).double()
    w = t([[0.25, 0.75]])
    # pre and post together at t0: LTP = (1 - W) * 1, no LTD
    deltas, state = run(rule, [([[1, 1]], [[1]])], w)
    assert torch.allclose(deltas[0], t([[0.75, 0.25]]))
    # t1: pre alone, post trace (λ=1) still 1: LTD = (W - 0) * 1
    dw, _ = rule.delta(*fc([[1, 1]], [[0]]), w, state)
    assert torch.allclose(dw, t([[-0.25, -0.75]]))
    assert torch.equal(rule.bound(t([[1.5, -0.5]])), t([[1.0, 0.0]]))


def test_stdp_refuses_bad_config():
    with pytest.raises(ConfigError, match='w_min and w_max'):
        STDP(weight_dependence='multiplicative')
    with pytest.raises(ConfigError, match='weight_dependence'):
        STDP(weight_dependence='mult')
    with pytest.raises(ConfigError, match='pre_decay'):
        STDP(pre_decay=1.5)
    with pytest.raises(ConfigError, match='w_min'):
        Hebbian(w_min=1.0, w_max=0.0)


def test_reward_stdp_group_reward_by_hand():
    # 2 classes x 1 neuron, 1 input, λ_pre = 0 (x̄ = x), λ_post = 0,
    # A+ = 1, A- = 0, b = 0.5, lr = 1.
    rule = RewardSTDP(num_classes=2, group_size=1, lr=1.0, a_plus=1.0,
                      a_minus=0.0, pre_eligibility=0.5, pre_decay=0.0,
                      post_decay=0.0).double()
    w = torch.zeros(2, 1, dtype=torch.float64)
    # label 0; t0: x = 1, y = (1, 1): rates (1, 1); R = (1-1, 0-1) = (0, -1)
    #   e = A+ y x + b x = (1.5, 1.5); dW = R e = (0, -1.5)
    # t1: x = 1, y = (0, 1): rates (0.5, 1); R = (0.5, -1)
    #   e = (0 + 0.5, 1 + 0.5) ; dW = (0.25, -1.5)
    deltas, state = run(rule, [([[1]], [[1, 1]]), ([[1]], [[0, 1]])], w,
                        teacher=torch.tensor([0]))
    assert torch.allclose(deltas[0], t([[0.0], [-1.5]]))
    assert torch.allclose(deltas[1], t([[0.25], [-1.5]]))
    assert torch.allclose(state['spike_count'], t([[1.0, 2.0]]))


def test_reward_stdp_groups_and_gate():
    # 2 classes x 2 neurons: a group's rate is the mean of its neurons
    rule = RewardSTDP(num_classes=2, group_size=2, lr=1.0, a_plus=0.0,
                      a_minus=0.0, pre_eligibility=1.0, pre_decay=0.0,
                      post_decay=0.0).double()
    w = torch.zeros(4, 1, dtype=torch.float64)
    # label 1, y = (1, 0 | 1, 1): rates (0.5, 1) -> R = (-0.5, -0.5, 0, 0)
    deltas, _ = run(rule, [([[1]], [[1, 0, 1, 1]])], w,
                    teacher=torch.tensor([1]))
    assert torch.allclose(deltas[0], t([[-0.5], [-0.5], [0.0], [0.0]]))
    # no label or label -1: gate closed, nothing learned
    deltas, _ = run(rule, [([[1]], [[1, 0, 1, 1]])], w, teacher=None)
    assert torch.count_nonzero(deltas[0]) == 0
    deltas, _ = run(rule, [([[1], [1]], [[1, 0, 1, 1], [1, 0, 1, 1]])], w,
                    teacher=torch.tensor([-1, 1]))
    # batch mean: only the labelled sample counts, divided by N = 2
    assert torch.allclose(deltas[0], t([[-0.25], [-0.25], [0.0], [0.0]]))
    rule.gate = False
    deltas, _ = run(rule, [([[1]], [[1, 0, 1, 1]])], w,
                    teacher=torch.tensor([1]))
    assert torch.count_nonzero(deltas[0]) == 0


def test_reward_stdp_refuses_wrong_population():
    rule = RewardSTDP(num_classes=3, group_size=2)
    with pytest.raises(ConfigError, match='num_classes \\* group_size'):
        rule.init_state(torch.zeros(1, 1, 4), torch.zeros(1, 1, 5), True)
    with pytest.raises(ConfigError, match='positive int'):
        RewardSTDP(num_classes=0)


def test_bcm_sliding_threshold_by_hand():
    # lr 1, θ0 = 0.5, τθ = 2, traces instantaneous; O = 1, I = 1
    rule = BCM(lr=1.0, theta0=0.5, tau_theta=2.0).double()
    w = torch.zeros(1, 1, dtype=torch.float64)
    # t0: y = 1, x = 1 -> dW = 1*(1-0.5)*1 = 0.5 ; θ = 0.5 + (1-0.5)/2 = 0.75
    # t1: y = 1, x = 1 -> dW = 1*(1-0.75) = 0.25 ; θ = 0.75 + 0.25/2 = 0.875
    # t2: y = 0.5      -> dW = 0.5*(0.5-0.875) = -0.1875 (depression)
    deltas, state = run(rule, [([[1]], [[1]]), ([[1]], [[1]]),
                               ([[1]], [[0.5]])], w)
    assert [d.item() for d in deltas] == pytest.approx([0.5, 0.25, -0.1875])
    assert state['theta'].item() == pytest.approx(0.875 + (0.25 - 0.875) / 2)
    assert rule.persistent_init(3)['theta'].tolist() == [0.5] * 3


def test_conv_positions_are_averaged():
    # 2 positions sharing one weight: dW = mean over positions
    rule = Hebbian(lr=1.0).double()
    pre = t([[[1.0, 0.0], [1.0, 1.0]]])  # [N=1, P=2, I=2]
    post = t([[[1.0], [0.0]]])  # [N=1, P=2, O=1]
    w = torch.zeros(1, 2, dtype=torch.float64)
    dw, _ = rule.delta(pre, post, w, rule.init_state(pre, post, True))
    assert torch.allclose(dw, t([[0.5, 0.0]]))


def test_build_rule_from_config_and_errors():
    rule = build_rule(dict(type='STDP', lr=0.1), 'MyLayer')
    assert isinstance(rule, STDP) and rule.lr.item() == pytest.approx(0.1)
    with pytest.raises(ConfigError, match='MyLayer: unknown rule type'):
        build_rule(dict(type='Hebian'), 'MyLayer')
    with pytest.raises(ConfigError, match='MyLayer: bad arguments'):
        build_rule(dict(type='Oja', eta=0.1), 'MyLayer')


def test_learnable_lr_gets_gradient():
    rule = Hebbian(lr=0.5)
    rule.make_learnable(('lr', ))
    pre, post = torch.ones(1, 1, 2), torch.ones(1, 1, 1)
    dw, _ = rule.delta(pre, post, torch.zeros(1, 1, 2),
                       rule.init_state(pre, post, False))
    dw.sum().backward()
    assert rule.lr.grad.item() == pytest.approx(2.0)
