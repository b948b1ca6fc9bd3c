"""The protocol every neuron follows, and the parameter plumbing they share.

Two execution forms, same numbers (BIDL's "iteration representation"):

* multi-step ``y_seq = neuron(x_seq)`` with ``x_seq`` of shape ``[T, B, ...]``
  returns ``[T, B, ...]``. Every call starts from a fresh state: nothing is
  kept on the module between calls, so there is no ``reset_net`` to forget
  and the batch samples never see each other's state.
* single-step ``y_t, state = neuron.step(x_t, state)`` with ``x_t`` of shape
  ``[B, ...]`` and ``state`` a ``dict[str, Tensor]`` keyed by
  :attr:`BaseNeuron.state_names` (``None`` means fresh): the leaves of the
  one state protocol of :mod:`bidl_train.utils.state`. This form is what
  deployment exports: the state tensors are explicit graph inputs and
  outputs.

Subclasses implement ``init_state`` and ``step``; :meth:`BaseNeuron.forward`
runs ``step`` over T, and a subclass may replace it by a fused kernel that
gives the same numbers.

Neurons that integrate, fire and reset (the LIF family) write their step as
the three pieces of SpikingJelly's ``BaseNode``, :class:`SpikingDynamics`:
``neuronal_charge`` (input and stored potential -> membrane ``u``),
``neuronal_fire`` (``s = H(u - threshold)``) and ``neuronal_reset``. Each
piece is written once (:class:`~bidl_train.neurons.lif.LIFEquations` for
BIDL's LIF) and every variant and the deployed node compose the same pieces.

Neuron parameters (alpha, theta, ...) are shared per layer, per channel or per
neuron. ``feature_shape`` is the per-sample shape the layer feeds the neuron
(``(C,)`` for a fully connected layer, ``(C, H, W)`` for a conv layer; entries
may be ``None`` when unknown at construction, e.g. spatial sizes), and the
channel is its dim 0:

* ``'layer'``: a scalar, shape ``()``;
* ``'channel'``: shape ``(C, 1, ..., 1)`` so it broadcasts over ``[B, C, ...]``;
* ``'neuron'``: shape ``feature_shape`` (every size must be known).
"""
import abc
import math

import torch
from torch import nn

from bidl_train.errors import ConfigError

__all__ = ['BaseNeuron', 'PARAM_SHAPES', 'SpikingDynamics']

PARAM_SHAPES = ('layer', 'channel', 'neuron')


class SpikingDynamics:
    """A step made of charge, fire and reset (SpikingJelly's ``BaseNode``).

    A mixin: the host (a neuron module, or a deployed node holding plain
    tensors) provides the parameters the pieces read. ``neuronal_fire`` is
    the one place a neuron turns its membrane into spikes, through the
    host's ``surrogate`` attribute: a surrogate-gradient spike function for
    training, or, in deployment, the plain Heaviside that
    :func:`bidl_train.deploy.nodes.use_plain_spikes` puts there. Both give
    ``H(x) = 1`` where ``x > 0`` (strictly) in the forward pass.
    """

    def neuronal_charge(self, x_t, v_prev):
        """The membrane ``u`` from the input ``x_t`` and stored ``v_prev``."""
        raise NotImplementedError(
            f'{type(self).__name__} does not define neuronal_charge')

    def neuronal_fire(self, u, threshold):
        """Spikes ``s = H(u - threshold)`` (surrogate backward)."""
        return self.surrogate(u - threshold)

    def neuronal_reset(self, u, s, threshold):
        """The potential ``r`` after the spikes ``s``."""
        raise NotImplementedError(
            f'{type(self).__name__} does not define neuronal_reset')


class BaseNeuron(nn.Module, metaclass=abc.ABCMeta):
    """Base class of spiking neurons (see the module docstring).

    A forward hook registered on any ``BaseNeuron`` sees the full
    ``[T, B, ...]`` output of every multi-step call, which is how firing-rate
    metrics observe spikes.
    """

    #: Names of the tensors in the state dict, in a fixed order (exporters
    #: use it to name graph inputs/outputs).
    state_names = ()

    def __init__(self, feature_shape=None, param_shape='layer', learnable=(),
                 name=None):
        super().__init__()
        self._label = name or type(self).__name__
        if param_shape not in PARAM_SHAPES:
            raise ConfigError(
                f'{self._label}: param_shape must be one of {PARAM_SHAPES}, '
                f'got {param_shape!r}')
        if feature_shape is not None:
            if isinstance(feature_shape, int):
                feature_shape = (feature_shape, )
            feature_shape = tuple(feature_shape)
            for size in feature_shape:
                if size is not None and (not isinstance(size, int)
                                         or size <= 0):
                    raise ConfigError(
                        f'{self._label}: feature_shape entries must be '
                        f'positive ints or None, got {feature_shape!r}')
        self.feature_shape = feature_shape
        self.param_shape = param_shape
        self._learnable = self._parse_learnable(learnable)

    # ------------------------------------------------------------------
    # The protocol
    # ------------------------------------------------------------------
    @abc.abstractmethod
    def init_state(self, x_t):
        """Fresh state for an input step ``x_t`` of shape ``[B, ...]``."""

    @abc.abstractmethod
    def step(self, x_t, state=None):
        """One time step: ``(y_t, new_state)``; ``state=None`` means fresh."""

    def forward(self, x_seq):
        """Multi-step form: run :meth:`step` over the leading time axis."""
        self.check_sequence(x_seq)
        state = None
        outputs = []
        for x_t in x_seq.unbind(0):
            y_t, state = self.step(x_t, state)
            outputs.append(y_t)
        return torch.stack(outputs, 0)

    # ------------------------------------------------------------------
    # Helpers for subclasses
    # ------------------------------------------------------------------
    def check_sequence(self, x_seq):
        """Refuse an input that is not a ``[T, B, ...]`` tensor."""
        if not torch.is_tensor(x_seq) or x_seq.dim() < 2:
            shape = tuple(x_seq.shape) if torch.is_tensor(x_seq) else type(
                x_seq).__name__
            raise ConfigError(
                f'{self._label}: expected a [T, B, ...] tensor (time first), '
                f'got {shape}')
        if x_seq.shape[0] == 0:
            raise ConfigError(f'{self._label}: the input has T = 0 time steps')
        self._check_features(x_seq.shape[2:])

    def _check_features(self, shape):
        if self.feature_shape is None:
            return
        expected = self.feature_shape
        ok = len(shape) == len(expected) and all(
            e is None or e == s for e, s in zip(expected, shape))
        if not ok:
            raise ConfigError(
                f'{self._label}: built for per-sample feature shape '
                f'{expected} but got {tuple(shape)}; fix the layer sizes '
                'in the config')

    def _parse_learnable(self, learnable):
        names = self.param_names()
        if learnable is True:
            return frozenset(names)
        if learnable in (False, None):
            return frozenset()
        if isinstance(learnable, str):
            learnable = (learnable, )
        learnable = frozenset(learnable)
        unknown = learnable - set(names)
        if unknown:
            raise ConfigError(
                f'{self._label}: learnable names unknown parameters '
                f'{sorted(unknown)}; this neuron has {list(names)}')
        return learnable

    def param_names(self):
        """Names of the neuron parameters that ``learnable`` may list."""
        return ()

    def param_tensor_shape(self):
        """The shape of one neuron parameter under ``param_shape``."""
        if self.param_shape == 'layer':
            return ()
        if self.feature_shape is None or self.feature_shape[0] is None:
            raise ConfigError(
                f'{self._label}: param_shape={self.param_shape!r} needs '
                'feature_shape (the per-sample shape, channel first), e.g. '
                'feature_shape=(C,) or (C, H, W)')
        if self.param_shape == 'channel':
            return (self.feature_shape[0], ) + (1, ) * (
                len(self.feature_shape) - 1)
        if any(s is None for s in self.feature_shape):
            raise ConfigError(
                f'{self._label}: param_shape="neuron" needs every size of '
                f'feature_shape, got {self.feature_shape}; give '
                'feature_shape=(C, H, W) in the neuron config')
        return self.feature_shape

    def add_neuron_param(self, name, value):
        """Register ``name`` as a Parameter (learnable) or a buffer.

        ``value`` is a number (filled into the parameter shape) or a tensor
        of exactly that shape.
        """
        shape = self.param_tensor_shape()
        if torch.is_tensor(value):
            if tuple(value.shape) != tuple(shape):
                raise ConfigError(
                    f'{self._label}: {name} has shape {tuple(value.shape)}, '
                    f'expected {tuple(shape)} for param_shape='
                    f'{self.param_shape!r}')
            tensor = value.detach().clone().float()
        else:
            if not isinstance(value, (int, float)) or isinstance(
                    value, bool) or not math.isfinite(value):
                raise ConfigError(
                    f'{self._label}: {name} must be a finite number, got '
                    f'{value!r}')
            tensor = torch.full(shape, float(value))
        if name in self._learnable:
            setattr(self, name, nn.Parameter(tensor))
        else:
            self.register_buffer(name, tensor)

    def extra_repr(self):
        return (f'feature_shape={self.feature_shape}, '
                f'param_shape={self.param_shape!r}, '
                f'learnable={sorted(self._learnable)}')
