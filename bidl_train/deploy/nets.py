"""The two exported forms of a lowered network.

* :class:`StepNet` is BIDL's state-aware graph: ``forward(x_t, *states)``
  returns ``(y_t, *new_states, *spikes)``; every state tensor is an explicit
  input and output, in the order of :attr:`LoweredNet.state_names`, and the
  spikes of each LIF layer follow (in the order of ``spike_names``) so that
  deployed spikes can be compared with PyTorch's.
* :class:`UnrolledNet` runs ``T`` steps from a fresh state inside one graph:
  ``forward(x_seq [T, B, ...]) -> logits [B, C]``. Tracing fixes ``T``.
"""
from torch import nn

from .nodes import LIFNode

__all__ = ['StepNet', 'UnrolledNet']


class StepNet(nn.Module):

    def __init__(self, lowered):
        super().__init__()
        self.nodes = nn.ModuleList([layer.node for layer in lowered.layers])
        self.state_names = list(lowered.state_names)
        self.spike_names = list(lowered.spike_names)
        self.output_names = ['y'] + self.state_names + self.spike_names

    def _run(self, x, states):
        """``states`` None: start fresh (zeros built inside the graph)."""
        new_states, spikes, i = [], [], 0
        for node in self.nodes:
            n = len(node.state_names)
            if states is None:
                mine = node.init_state(x)
            else:
                mine = list(states[i:i + n])
            i += n
            x, mine, s = node.step(x, mine)
            new_states.extend(mine)
            if isinstance(node, LIFNode):
                spikes.append(s)
        return x, new_states, spikes

    def forward(self, x, *states):
        y, new_states, spikes = self._run(x, states)
        return tuple([y] + new_states + spikes)

    def initial_states(self, x):
        """The fresh state for input step ``x`` (a list of tensors)."""
        states, i = [], 0
        for node in self.nodes:
            fresh = node.init_state(x)
            n = len(node.state_names)
            x, _, _ = node.step(x, fresh if n else [])
            states.extend(t.detach() for t in fresh)
            i += n
        return states


class UnrolledNet(nn.Module):

    def __init__(self, step_net):
        super().__init__()
        self.step_net = step_net

    def forward(self, x_seq):
        states = None
        y = None
        for t in range(x_seq.shape[0]):
            y, states, _ = self.step_net._run(x_seq[t], states)
        return y
