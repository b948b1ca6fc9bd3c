"""The two exported forms of a lowered network.

* :class:`StepNet` is BIDL's state-aware graph: ``forward(x_t, *states)``
  returns ``(y_t, *new_states, *spikes)``; every state tensor is an explicit
  input and output, in the order of :attr:`LoweredNet.state_names`, and the
  spikes of each LIF layer follow (in the order of ``spike_names``) so that
  deployed spikes can be compared with PyTorch's. A net with a layer that
  learns from labels (:attr:`LoweredNet.teacher_layers`) takes them right
  after ``x``: ``forward(x_t, teacher, *states)``, ``teacher`` int64
  ``[B]`` with ``-1`` for "no label" (no reward for that sample); other
  nets have no such input.
* :class:`UnrolledNet` runs ``T`` steps from a fresh state inside one graph:
  ``forward(x_seq [T, B, ...]) -> logits [B, C]``. Tracing it would fix
  ``T``, so the exporters use :func:`script_unrolled` instead: the step is
  traced once (plain ops, list-of-states in and out) and a scripted loop
  over ``x_seq.size(0)`` calls it, so ``T`` (and the batch) stay free in the
  saved TorchScript module and become an ONNX ``Loop``. With a teacher it
  is ``forward(x_seq, teacher)``: the same labels at every step, as during
  co-learning.
"""
import warnings
from typing import List

import torch
from torch import nn

__all__ = ['StepNet', 'UnrolledNet', 'script_unrolled', 'example_teacher']


class StepNet(nn.Module):

    def __init__(self, lowered):
        super().__init__()
        self.nodes = nn.ModuleList([layer.node for layer in lowered.layers])
        #: the model layer each node comes from (for messages)
        self.sources = [layer.source for layer in lowered.layers]
        self.state_names = list(lowered.state_names)
        #: states with no batch axis (a persistent plastic layer's weight)
        self.shared_state_names = list(lowered.shared_state_names)
        self.spike_names = list(lowered.spike_names)
        self.output_names = ['y'] + self.state_names + self.spike_names
        #: the layers that read the ``teacher`` input (empty: no input)
        self.teacher_layers = list(lowered.teacher_layers)

    @property
    def needs_teacher(self):
        return bool(self.teacher_layers)

    @property
    def input_names(self):
        """The step graph's inputs: ``x``, ``teacher`` (only where a layer
        learns from labels), then the states."""
        return (['x'] + (['teacher'] if self.needs_teacher else []) +
                self.state_names)

    def _run(self, x, states, teacher=None):
        """``states`` None: start fresh (zeros built inside the graph);
        ``teacher``: the labels for the nodes that learn from them."""
        new_states, spikes, i = [], [], 0
        for node in self.nodes:
            # the positional states of this node, as its flat state dict
            names = node.state_names
            if states is None:
                mine = node.init_state(x)
            else:
                mine = dict(zip(names, states[i:i + len(names)]))
            i += len(names)
            if node.needs_teacher:
                x, mine, s = node.step(x, mine, teacher)
            else:
                x, mine, s = node.step(x, mine)
            new_states.extend(mine[n] for n in names)
            if isinstance(s, list):  # a StatefulNode: one per neuron
                spikes.extend(s)
            elif s is not None:
                spikes.append(s)
        return x, new_states, spikes

    def forward(self, x, *inputs):
        """``(x, *states)``, or ``(x, teacher, *states)`` with a teacher."""
        if self.needs_teacher:
            teacher, states = inputs[0], inputs[1:]
        else:
            teacher, states = None, inputs
        y, new_states, spikes = self._run(x, states, teacher)
        return tuple([y] + new_states + spikes)

    def initial_states(self, x):
        """The fresh state for input step ``x`` (a list of tensors)."""
        states = []
        for node in self.nodes:
            fresh = node.init_state(x)
            x, _, _ = node.step(x, fresh)
            states.extend(fresh[n].detach() for n in node.state_names)
        return states


class _ListStep(nn.Module):
    """``(x_t, [states]) -> (y_t, [new states])``: a fixed-arity signature
    the scripted loop can carry without unpacking a variable tuple.

    ``examples``: one example of each state (batch 1) and ``shared``: the
    flags of the states with no batch axis. Inside the scripted loop the
    carried list's elements have neither dtype nor shape, and the ONNX
    exporter needs them for some ops (``clamp_min`` of LIFPlus's refractory
    counter needs the dtype, ``flatten`` in Spikformer the rank, a plastic
    conv layer's local kernel its sizes). A cast of each state to its own
    dtype and a reshape to its own shape (batch axis free: ``-1``) give
    them back; at run time both do nothing.
    """

    def __init__(self, step_net, examples, shared):
        super().__init__()
        self.step_net = step_net
        self.dtypes = [t.dtype for t in examples]
        self.shapes = [tuple(t.shape) if one_for_all or t.dim() == 0 else
                       (-1, ) + tuple(t.shape[1:])
                       for t, one_for_all in zip(examples, shared)]

    def forward(self, x, states: List[torch.Tensor], teacher=None):
        """``teacher``: traced as a third input only where the net needs
        one (the traced signature has exactly the inputs given)."""
        states = [s.to(d).reshape(shape) for s, d, shape in zip(
            states, self.dtypes, self.shapes)]
        y, new_states, _ = self.step_net._run(x, states, teacher)
        return y, new_states


class _FreshState(nn.Module):
    """``x_0 -> [fresh states]``, shaped for ``x_0``'s batch."""

    def __init__(self, step_net):
        super().__init__()
        self.step_net = step_net

    def forward(self, x):
        return self.step_net.initial_states(x)


class _Loop(nn.Module):
    """The scripted time loop around the traced step and fresh state."""

    def __init__(self, fresh, step):
        super().__init__()
        self.fresh = fresh
        self.step = step

    def forward(self, x_seq):
        # the first step outside the loop gives ``y`` its dtype and shape
        # (fp16 exports carry half logits through the ONNX Loop)
        y, states = self.step(x_seq[0], self.fresh(x_seq[0]))
        for t in range(1, x_seq.size(0)):
            y, states = self.step(x_seq[t], states)
        return y


class _TeacherLoop(_Loop):
    """:class:`_Loop` for a net with a teacher: the labels ``[B]`` go to
    every step (the same for all of them, as during co-learning)."""

    def forward(self, x_seq, teacher):
        y, states = self.step(x_seq[0], self.fresh(x_seq[0]), teacher)
        for t in range(1, x_seq.size(0)):
            y, states = self.step(x_seq[t], states, teacher)
        return y


def example_teacher(batch=1):
    """The labels a graph with a teacher is traced with: ``-1`` (no label);
    the traced ops do not depend on the values."""
    return torch.full((batch, ), -1, dtype=torch.int64)


def script_unrolled(step_net, x_t):
    """A ScriptModule ``x_seq [T, B, ...] -> logits`` for any ``T`` and ``B``
    (``(x_seq, teacher) -> logits`` for a net that needs a teacher).

    ``x_t``: one example step (batch 1) to trace the step graph with.
    """
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        states = step_net.initial_states(x_t)
        shared = [n in step_net.shared_state_names
                  for n in step_net.state_names]
        args = (x_t, states)
        if step_net.needs_teacher:
            args += (example_teacher(x_t.shape[0]), )
        step = torch.jit.trace(_ListStep(step_net, states, shared), args,
                               check_trace=False)
        fresh = torch.jit.trace(_FreshState(step_net), (x_t, ),
                                check_trace=False)
    loop = _TeacherLoop if step_net.needs_teacher else _Loop
    return torch.jit.script(loop(fresh, step))


class UnrolledNet(nn.Module):

    def __init__(self, step_net):
        super().__init__()
        self.step_net = step_net

    def forward(self, x_seq, teacher=None):
        states = None
        y = None
        for t in range(x_seq.shape[0]):
            y, states, _ = self.step_net._run(x_seq[t], states, teacher)
        return y
