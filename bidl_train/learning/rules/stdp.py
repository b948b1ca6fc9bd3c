"""Spike-timing-dependent plasticity: pair-based STDP and BIDL's
reward-modulated STDP for population-coded output layers.

Traces (module :mod:`~bidl_train.learning.rules.base`)::

    x̄_t = λ_pre x̄_{t-1} + x_t          ȳ_t = λ_post ȳ_{t-1} + y_t

Pair-based STDP with nearest-neighbour-free (all-to-all) pairing, written
with traces so the update of a step is two outer products::

    LTP_t = y_t ⊗ x̄_t                 a post spike meets earlier (or
                                       simultaneous) pre spikes
    LTD_t = (λ_post ȳ_{t-1}) ⊗ x_t     a pre spike meets strictly earlier
                                       post spikes
    ΔW    = η ( A₊ f₊(W) ⟨LTP_t⟩ − A₋ f₋(W) ⟨LTD_t⟩ )

A pre and a post spike in the same step count as causal (potentiation).
Weight dependence:

* ``'additive'``: ``f₊ = f₋ = 1`` (hard bounds by clamping);
* ``'multiplicative'``: ``f₊ = w_max − W``, ``f₋ = W − w_min`` (soft
  bounds: potentiation vanishes at ``w_max``, depression at ``w_min``).
"""
import torch

from bidl_train.errors import ConfigError
from bidl_train.registry import LEARNING_RULES
from .base import LocalRule, check_number

__all__ = ['STDP', 'RewardSTDP']

_DEPENDENCE = ('additive', 'multiplicative')


@LEARNING_RULES.register_module()
class STDP(LocalRule):
    """Pair-based STDP (see the module docstring for the equations).

    Args:
        lr (float): η.
        a_plus, a_minus (float): amplitudes ``A₊``, ``A₋`` (``>= 0``).
        pre_decay, post_decay (float): trace decays λ (``exp(-dt/τ)``).
        weight_dependence (str): ``'additive'`` or ``'multiplicative'``
            (the latter needs ``w_min`` and ``w_max``).
        w_min, w_max (float | None): bounds of the local weight.
    """

    def __init__(self, lr=0.01, a_plus=1.0, a_minus=1.0, pre_decay=0.5,
                 post_decay=0.5, weight_dependence='additive', w_min=None,
                 w_max=None):
        super().__init__(lr, pre_decay, post_decay, w_min, w_max)
        owner = type(self).__name__
        self.a_plus = check_number(owner, 'a_plus', a_plus, 0)
        self.a_minus = check_number(owner, 'a_minus', a_minus, 0)
        if weight_dependence not in _DEPENDENCE:
            raise ConfigError(f'{owner}: weight_dependence must be one of '
                              f'{_DEPENDENCE}, got {weight_dependence!r}')
        if weight_dependence == 'multiplicative' and (w_min is None
                                                      or w_max is None):
            raise ConfigError(
                f"{owner}: weight_dependence='multiplicative' needs both "
                'w_min and w_max (the soft bounds)')
        self.weight_dependence = weight_dependence

    def _dependence(self, weight):
        if self.weight_dependence == 'additive':
            return 1.0, 1.0
        return self.w_max - weight, weight - self.w_min

    def pair_terms(self, pre, post, state):
        """Traces and the two STDP factors of a step.

        Returns ``(pre_trace, post_trace, earlier_post)`` where
        ``earlier_post = λ_post ȳ_{t-1}``.
        """
        earlier_post = self.post_decay * state['post_trace']
        pre_trace, post_trace = self.traces(pre, post, state)
        return pre_trace, post_trace, earlier_post

    def delta(self, pre, post, weight, state, teacher=None):
        pre_trace, post_trace, earlier_post = self.pair_terms(
            pre, post, state)
        shared = weight.dim() == 2
        f_plus, f_minus = self._dependence(weight)
        ltp = self.outer(post, pre_trace, shared)
        ltd = self.outer(earlier_post, pre, shared)
        dw = self.lr * (self.a_plus * f_plus * ltp -
                        self.a_minus * f_minus * ltd)
        return dw, {'pre_trace': pre_trace, 'post_trace': post_trace}

    def extra_repr(self):
        return (super().extra_repr() + f', a_plus={self.a_plus}, '
                f'a_minus={self.a_minus}, '
                f'weight_dependence={self.weight_dependence!r}')


@LEARNING_RULES.register_module()
class RewardSTDP(STDP):
    """BIDL's reward-modulated STDP for a population-coded output layer.

    The ``O = num_classes * group_size`` outputs form one group of
    ``group_size`` neurons per class (output ``o`` belongs to class
    ``c(o) = o // group_size``). Per sample ``n`` and step ``t``::

        r_{n,c}   = spikes of group c so far / (group_size * P * (t + 1))
        R_{n,o}   = [label_n = c(o)] − r_{n,c(o)}      reward per group
        g_n       = gate * [label_n given]              learning switch
        e_{n,o,i} = A₊ y_o x̄_i − A₋ λ_post ȳ_{o,t-1} x_i + b x̄_i
        ΔW_oi     = η ⟨ g_n R_{n,o} e_{n,o,i} ⟩

    The group of the true class is rewarded until it fires at rate 1, every
    other group is punished in proportion to its rate. ``e`` is the STDP
    eligibility plus ``b`` (``pre_eligibility``) times the presynaptic
    trace; with ``b > 0`` a silent group still learns (the update is then a
    local delta rule), with ``b = 0`` it is pure reward-modulated STDP.

    The gate switches learning on and off: ``gate=False`` (or setting
    ``rule.gate = False`` at run time) and samples without a label
    (``teacher`` is None, or a label ``< 0``) change nothing, which is how
    inference runs on chip with the same network.

    Args:
        num_classes (int), group_size (int): the population layout.
        pre_eligibility (float): ``b`` above, ``>= 0``.
        gate (bool): initial state of the learning switch.
        Others as :class:`STDP`.
    """

    needs_teacher = True

    def __init__(self, num_classes, group_size=1, lr=0.01, a_plus=1.0,
                 a_minus=1.0, pre_eligibility=0.0, pre_decay=0.5,
                 post_decay=0.5, weight_dependence='additive', gate=True,
                 w_min=None, w_max=None):
        super().__init__(lr, a_plus, a_minus, pre_decay, post_decay,
                         weight_dependence, w_min, w_max)
        for name, value in (('num_classes', num_classes),
                            ('group_size', group_size)):
            if isinstance(value, bool) or not isinstance(value,
                                                         int) or value < 1:
                raise ConfigError(f'RewardSTDP: {name} must be a positive '
                                  f'int, got {value!r}')
        self.num_classes = num_classes
        self.group_size = group_size
        self.pre_eligibility = check_number('RewardSTDP', 'pre_eligibility',
                                            pre_eligibility, 0)
        self.gate = bool(gate)

    def init_state(self, pre, post, shared):
        outputs = post.shape[-1]
        if outputs != self.num_classes * self.group_size:
            raise ConfigError(
                f'RewardSTDP: the layer has {outputs} outputs but '
                f'num_classes * group_size = {self.num_classes} * '
                f'{self.group_size} = {self.num_classes * self.group_size}')
        state = super().init_state(pre, post, shared)
        state['spike_count'] = torch.zeros(post.shape[0], self.num_classes,
                                           dtype=post.dtype,
                                           device=post.device)
        state['steps'] = torch.zeros((), dtype=post.dtype,
                                     device=post.device)
        return state

    def reward(self, post, state, teacher):
        """``(R [N, O], g [N], new spike_count, new steps)``."""
        batch, positions = post.shape[:2]
        per_group = post.reshape(batch, positions, self.num_classes,
                                 self.group_size).sum(dim=(1, 3))
        count = state['spike_count'] + per_group
        steps = state['steps'] + 1
        rate = count / (self.group_size * positions * steps)
        if teacher is None or not self.gate:
            gate = torch.zeros(batch, dtype=post.dtype, device=post.device)
            target = torch.zeros_like(rate)
        else:
            labels = torch.as_tensor(teacher, device=post.device).long()
            if labels.shape != (batch, ):
                raise ConfigError(
                    f'RewardSTDP: expected one label per sample ({batch}), '
                    f'got a teacher of shape {tuple(labels.shape)}')
            # a value check has no place in a traced (deployed) graph: it
            # would be evaluated once, on the tracing example
            if not torch.jit.is_tracing() and (
                    labels >= self.num_classes).any():
                raise ConfigError(
                    f'RewardSTDP: label {int(labels.max())} is out of range '
                    f'for num_classes={self.num_classes}')
            gate = (labels >= 0).to(post.dtype)
            # one-hot by comparison, not by masked assignment: plain ops a
            # TorchScript trace and ONNX record exactly (bidl-deploy's
            # teacher input); a label -1 matches no class, so its row is 0
            classes = torch.arange(self.num_classes, device=post.device)
            target = (labels.unsqueeze(1) == classes).to(rate.dtype)
        group_reward = (target - rate) * gate.unsqueeze(1)  # [N, C]
        reward = group_reward.repeat_interleave(self.group_size, dim=1)
        return reward, gate, count, steps

    def delta(self, pre, post, weight, state, teacher=None):
        pre_trace, post_trace, earlier_post = self.pair_terms(
            pre, post, state)
        shared = weight.dim() == 2
        reward, _, count, steps = self.reward(post, state, teacher)
        reward = reward.unsqueeze(1)  # [N, 1, O]
        f_plus, f_minus = self._dependence(weight)
        potentiate = self.outer(reward * post, pre_trace, shared)
        depress = self.outer(reward * earlier_post, pre, shared)
        dw = self.a_plus * f_plus * potentiate - self.a_minus * f_minus * \
            depress
        if self.pre_eligibility:
            dw = dw + self.pre_eligibility * self.outer(
                reward.expand_as(post), pre_trace, shared)
        new_state = {'pre_trace': pre_trace, 'post_trace': post_trace,
                     'spike_count': count, 'steps': steps}
        return self.lr * dw, new_state

    def extra_repr(self):
        return (super().extra_repr() + f', num_classes={self.num_classes}, '
                f'group_size={self.group_size}, '
                f'pre_eligibility={self.pre_eligibility}, gate={self.gate}')
