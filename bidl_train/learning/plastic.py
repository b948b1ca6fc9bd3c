"""Plastic spiking layers: a global weight trained by BPTT plus a local
weight trained by a local rule during the forward pass.

Per time step ``t``, for a synapse with global weight ``W_g`` (a Parameter)
and local weight ``L_t``::

    I_t     = W_g x_t + b + L_t x_t           synaptic current
    y_t     = neuron(I_t)                      (conv: pool, BN before it)
    ΔL_t    = rule(x_t, y_t, L_t)              traces inside the rule
    L_{t+1} = bound( (1 − δ) L_t + ΔL_t )      δ: forgetting per step

Two kinds of local weight (``plasticity``):

* ``'fast'``: ``L`` starts at 0 for every sample and is per sample
  (``[B, O, I]``): "differentiable plasticity" (Miconi et al., 2018). The
  update is part of the autograd graph, so the global loss trains ``W_g``
  *through* the unrolled plasticity, and with ``learn_coefficients=True``
  also the rule's learning rate η and the forgetting δ.
* ``'persistent'``: ``L`` is one ``[O, I]`` buffer shared by the batch and
  carried from sample to sample (online learning). Updates are taken
  without gradients, averaged over the batch, and written back to the
  buffer after the forward call, so it is saved in checkpoints. Rule state
  that outlives a sample (BCM's threshold) lives in buffers ``rule_<name>``.

Whether local learning runs is ``learning``: None (default) means "fast
layers always, persistent layers in training mode"; True/False force it
(the co-learning loop, :class:`~bidl_train.engine.loops.GlobalLocalLoop`,
switches it during its own training steps). Rules that need a teaching
signal (:class:`~bidl_train.learning.rules.RewardSTDP`) get the labels of
the batch: ``step(x_t, state, teacher=labels)``, or in ``forward`` those of
the enclosing :func:`~bidl_train.learning.teacher.teaching` block, which the
classifier opens with the labels of ``data_samples`` in its training
forward. Without labels they do not learn.

Both execution forms give the same numbers: ``forward(x_seq)`` on
``[T, B, ...]`` and ``step(x_t, state)`` with ``state = {'neuron': ...,
'local': L_t, 'rule': traces}`` (the local weight is explicit state; the
protocol of :mod:`bidl_train.utils.state`, so its tensors are named
``neuron.v``, ``local``, ``rule.pre_trace`` ...; ``neuron`` and ``rule`` are
``None`` until the first step creates them). The
single-step form never writes the buffers; :meth:`commit` does. The global
part ``W_g x`` of the multi-step form runs once on the folded ``[T*B, ...]``
input; BatchNorm (conv layers) runs per step in both forms.
"""
import torch
import torch.nn.functional as F
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.layers import build_neuron, fold_time, unfold_time
from bidl_train.layers.lif_layers import check_input_dims
from bidl_train.registry import MODELS
from .rules.base import build_rule, check_number
from .teacher import current_teacher

__all__ = ['PlasticFcLif', 'PlasticConv2dLif', 'PlasticLayer']

PLASTICITY = ('fast', 'persistent')


def _positive_int(owner, name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f'{owner}: {name} must be a positive int, got '
                          f'{value!r}')


class PlasticLayer(nn.Module):
    """Shared machinery of plastic layers (see the module docstring).

    Its neuron runs step by step inside :meth:`forward`, so the layer's own
    output is what firing-rate monitors observe (``emits_spikes``).

    Subclasses define ``global_current``, ``local_current``,
    ``after_synapse``, ``pre_post`` and set ``self.local_shape``
    (``(O, I)``) before calling :meth:`_setup_plasticity`.
    """

    def _setup_plasticity(self, rule, plasticity, decay, learn_coefficients,
                          learning):
        owner = type(self).__name__
        if plasticity not in PLASTICITY:
            raise ConfigError(f'{owner}: plasticity must be one of '
                              f'{PLASTICITY}, got {plasticity!r}')
        self.plasticity = plasticity
        self.rule = build_rule(rule, owner)
        decay = check_number(owner, 'decay', decay, 0, 1)
        if learning not in (None, True, False):
            raise ConfigError(f'{owner}: learning must be None, True or '
                              f'False, got {learning!r}')
        self.learning = learning
        if learn_coefficients:
            if plasticity != 'fast':
                raise ConfigError(
                    f"{owner}: learn_coefficients needs plasticity='fast' "
                    '(persistent local updates carry no gradient)')
            self.rule.make_learnable(('lr', ))
            self.decay = nn.Parameter(torch.tensor(decay))
        else:
            self.register_buffer('decay', torch.tensor(decay))
        if plasticity == 'persistent':
            self.register_buffer('local_weight', torch.zeros(
                self.local_shape))
            out_features = self.local_shape[0]
            for key, value in self.rule.persistent_init(out_features).items():
                self.register_buffer(f'rule_{key}', value)

    # ------------------------------------------------------------------
    # control (used by the co-learning loop and by users)
    # ------------------------------------------------------------------
    def learning_active(self):
        """Whether the local rule updates ``L`` in the current call."""
        if self.learning is not None:
            return bool(self.learning)
        return self.plasticity == 'fast' or self.training

    def reset_local(self):
        """Forget everything learned locally (persistent layers)."""
        if self.plasticity == 'persistent':
            with torch.no_grad():
                self.local_weight.zero_()
                init = self.rule.persistent_init(self.local_shape[0])
                for key, value in init.items():
                    getattr(self, f'rule_{key}').copy_(value)

    def local_state_dict(self):
        """The persistent local tensors by name (empty for fast layers)."""
        if self.plasticity != 'persistent':
            return {}
        names = ['local_weight'] + [f'rule_{k}'
                                    for k in self.rule.persistent_keys]
        return {n: getattr(self, n) for n in names}

    # ------------------------------------------------------------------
    # both execution forms
    # ------------------------------------------------------------------
    def init_state(self, x_t):
        """Fresh state for a ``[B, ...]`` step: neuron fresh, ``L`` from the
        buffer (persistent) or zeros per sample (fast), traces fresh."""
        if self.plasticity == 'persistent':
            local = self.local_weight.detach().clone().to(x_t.dtype)
        else:
            local = x_t.new_zeros((x_t.shape[0], ) + tuple(self.local_shape))
        return {'neuron': None, 'local': local, 'rule': None}

    def _rule_state(self, pre, post, shared):
        state = self.rule.init_state(pre, post, shared)
        if self.plasticity == 'persistent':
            for key in self.rule.persistent_keys:
                state[key] = getattr(self, f'rule_{key}').to(post.dtype)
        return state

    def _advance(self, x_t, g_t, state, teacher):
        """One step given the precomputed global current ``g_t``."""
        local = state['local']
        current = self.after_synapse(g_t + self.local_current(x_t, local))
        y, neuron_state = self.neuron.step(current, state['neuron'])
        rule_state = state['rule']
        if self.learning_active():
            persistent = self.plasticity == 'persistent'
            with torch.set_grad_enabled(torch.is_grad_enabled()
                                        and not persistent):
                pre, post = self.pre_post(x_t, y)
                if persistent:
                    pre, post = pre.detach(), post.detach()
                if rule_state is None:
                    rule_state = self._rule_state(pre, post, persistent)
                dw, rule_state = self.rule.delta(pre, post, local,
                                                 rule_state, teacher)
                retain = 1.0 - self.decay.clamp(0.0, 1.0)
                local = self.rule.bound(retain * local + dw)
        return y, {'neuron': neuron_state, 'local': local,
                   'rule': rule_state}

    emits_spikes = True

    def forward(self, x_seq):
        self._check_input(x_seq, True)
        steps = x_seq.shape[0]
        folded, _ = fold_time(x_seq, type(self).__name__)
        g_seq = unfold_time(self.global_current(folded), steps)
        state = self.init_state(x_seq[0])
        teacher = current_teacher()
        outputs = []
        for t in range(steps):
            y, state = self._advance(x_seq[t], g_seq[t], state, teacher)
            outputs.append(y)
        if self.plasticity == 'persistent' and self.learning_active():
            self.commit(state)
        return torch.stack(outputs, 0)

    def step(self, x_t, state=None, teacher=None):
        """Single-step form; ``state`` as returned by a previous call.
        ``teacher``: labels ``[B]`` for a rule that needs them (default: those
        of the enclosing :func:`~bidl_train.learning.teacher.teaching`)."""
        self._check_input(x_t, False)
        if state is None:
            state = self.init_state(x_t)
        if teacher is None:
            teacher = current_teacher()
        return self._advance(x_t, self.global_current(x_t), state, teacher)

    def commit(self, state):
        """Write a state's local weight (and persistent rule state) into the
        buffers of a persistent layer."""
        if self.plasticity != 'persistent':
            raise ConfigError(f'{type(self).__name__}: commit() needs '
                              "plasticity='persistent'")
        with torch.no_grad():
            self.local_weight.copy_(state['local'])
            if state['rule'] is not None:
                for key in self.rule.persistent_keys:
                    getattr(self, f'rule_{key}').copy_(state['rule'][key])

    def _check_input(self, x, time_axis):
        check_input_dims(type(self).__name__, x, self._in_dims, time_axis)

    def extra_repr(self):
        return (f'plasticity={self.plasticity!r}, learning={self.learning}, '
                f'local_shape={tuple(self.local_shape)}')


@MODELS.register_module()
class PlasticFcLif(PlasticLayer):
    """Plastic ``Linear -> neuron`` on ``[T, B, I]`` (see the module doc).

    Args:
        in_features, out_features (int): sizes.
        rule (dict): local rule config, e.g. ``dict(type='STDP', lr=1e-3)``.
        plasticity (str): ``'fast'`` or ``'persistent'``.
        decay (float): forgetting δ of the local weight per step.
        learn_coefficients (bool): fast layers only: η and δ become
            Parameters trained by the global loss.
        learning (bool | None): force local learning on/off.
        bias (bool), neuron (dict): as :class:`~bidl_train.layers.FcLif`.
    """

    _in_dims = 1

    def __init__(self, in_features, out_features, rule=dict(type='Hebbian'),
                 plasticity='persistent', decay=0.0,
                 learn_coefficients=False, learning=None, bias=True,
                 neuron=dict(type='LIF')):
        super().__init__()
        _positive_int('PlasticFcLif', 'in_features', in_features)
        _positive_int('PlasticFcLif', 'out_features', out_features)
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.neuron = build_neuron(neuron, (out_features, ), 'PlasticFcLif')
        self.local_shape = (out_features, in_features)
        self._setup_plasticity(rule, plasticity, decay, learn_coefficients,
                               learning)

    def global_current(self, x):
        if x.shape[-1] != self.linear.in_features:
            raise ConfigError(
                f'PlasticFcLif: expected {self.linear.in_features} input '
                f'features, got {x.shape[-1]}')
        return self.linear(x)

    def local_current(self, x_t, local):
        if local.dim() == 2:
            return x_t @ local.t()
        return torch.einsum('boi,bi->bo', local, x_t)

    def after_synapse(self, current):
        return current

    def pre_post(self, x_t, y_t):
        return x_t.unsqueeze(1), y_t.unsqueeze(1)


@MODELS.register_module()
class PlasticConv2dLif(PlasticLayer):
    """Plastic ``Conv2d -> [MaxPool] -> [BatchNorm] -> neuron`` on
    ``[T, B, C, H, W]`` (BIDL's order, as :class:`Conv2dLif`).

    The local weight is the flattened kernel ``[O, C*k*k]``. Its rule sees
    the input patches at every conv output position as ``pre`` and the
    spikes of the neuron fed by that position as ``post``: with pooling, a
    pooled neuron's spike is credited to every position of its window
    (positions cut off by the pooling floor see no spike). Updates are
    averaged over positions (weight sharing).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, bias,
        norm, pool, neuron: as :class:`~bidl_train.layers.Conv2dLif`.
        rule, plasticity, decay, learn_coefficients, learning: as
        :class:`PlasticFcLif`.
    """

    _in_dims = 3

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1,
                 padding=1, rule=dict(type='Hebbian'),
                 plasticity='persistent', decay=0.0,
                 learn_coefficients=False, learning=None, bias=True,
                 norm=True, pool=None, neuron=dict(type='LIF')):
        super().__init__()
        owner = 'PlasticConv2dLif'
        _positive_int(owner, 'in_channels', in_channels)
        _positive_int(owner, 'out_channels', out_channels)
        _positive_int(owner, 'kernel_size', kernel_size)
        _positive_int(owner, 'stride', stride)
        if isinstance(padding, bool) or not isinstance(padding,
                                                       int) or padding < 0:
            raise ConfigError(f'{owner}: padding must be an int >= 0, got '
                              f'{padding!r}')
        if pool is not None:
            _positive_int(owner, 'pool', pool)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size,
                              stride=stride, padding=padding, bias=bias)
        self.pool = nn.MaxPool2d(pool) if pool is not None else None
        self.norm = nn.BatchNorm2d(out_channels) if norm else None
        self.neuron = build_neuron(neuron, (out_channels, None, None), owner)
        self.local_shape = (out_channels,
                            in_channels * kernel_size * kernel_size)
        self._setup_plasticity(rule, plasticity, decay, learn_coefficients,
                               learning)

    def global_current(self, x):
        if x.shape[1] != self.conv.in_channels:
            raise ConfigError(
                f'PlasticConv2dLif: expected {self.conv.in_channels} input '
                f'channels, got {x.shape[1]}')
        return self.conv(x)

    def _patches(self, x_t):
        return F.unfold(x_t, self.conv.kernel_size, padding=self.conv.padding,
                        stride=self.conv.stride)  # [B, C*k*k, L]

    def _conv_size(self, x_t):
        k, s, p = (self.conv.kernel_size[0], self.conv.stride[0],
                   self.conv.padding[0])
        return ((x_t.shape[2] + 2 * p - k) // s + 1,
                (x_t.shape[3] + 2 * p - k) // s + 1)

    def local_current(self, x_t, local):
        height, width = self._conv_size(x_t)
        if local.dim() == 2:
            # the shape from the layer's sizes, not weight.shape: tracing
            # records weight.shape as a run-time value, and ONNX export
            # needs the kernel size as a constant (deployment)
            kernel = local.reshape(self.conv.out_channels,
                                   self.conv.in_channels,
                                   *self.conv.kernel_size)
            return F.conv2d(x_t, kernel, stride=self.conv.stride,
                            padding=self.conv.padding)
        out = torch.einsum('boi,bil->bol', local, self._patches(x_t))
        return out.reshape(out.shape[0], out.shape[1], height, width)

    def after_synapse(self, current):
        if self.pool is not None:
            current = self.pool(current)
        return current if self.norm is None else self.norm(current)

    def pre_post(self, x_t, y_t):
        pre = self._patches(x_t).transpose(1, 2)  # [B, L, C*k*k]
        height, width = self._conv_size(x_t)
        post = y_t
        if self.pool is not None:
            size = self.pool.kernel_size
            post = post.repeat_interleave(size, 2).repeat_interleave(size, 3)
            post = F.pad(post, (0, width - post.shape[3], 0,
                                height - post.shape[2]))
        return pre, post.flatten(2).transpose(1, 2)  # [B, L, O]
