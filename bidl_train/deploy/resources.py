"""What a deployed network needs on a chip: neurons, synapses, fan-in, state.

Counted per sample on the lowered network by running one step and reading
every node's input and output shapes:

* neurons: the elements a LIF layer integrates (its membrane size);
* synapses: connections of each conv/linear, ``fan_in * outputs``, where
  ``fan_in`` is what one output reads (``in_channels / groups * kernel``
  for a conv, ``in_features`` for a linear);
* state bytes: all state tensors of one sample at the deployed precision
  (membranes plus the head's running sum and step count).
"""
import torch

from .nets import StepNet
from .nodes import LIFNode, WeightedNode

__all__ = ['resource_summary']

_BYTES = {'fp32': 4, 'fp16': 2, 'int8': 4}  # int8: weights only


@torch.no_grad()
def resource_summary(lowered, x_t, precision='fp32'):
    net = StepNet(lowered).eval()
    x = x_t[:1].float()
    layers, neurons, synapses, weights, state_elems = [], 0, 0, 0, 0
    for layer, node in zip(lowered.layers, net.nodes):
        fresh = node.init_state(x)
        y, _, _ = node.step(x, fresh)
        state_elems += sum(t.numel() for t in fresh)
        entry = dict(layer=layer.source, kind=type(node).__name__)
        if isinstance(node, WeightedNode):
            w = node.effective_weight()
            fan_in = int(w[0].numel())
            entry.update(op=node.kind, fan_in=fan_in,
                         synapses=fan_in * int(y.numel()),
                         weights=int(w.numel()), output_shape=list(
                             y.shape[1:]))
            synapses += entry['synapses']
            weights += entry['weights']
            layers.append(entry)
        elif isinstance(node, LIFNode):
            entry.update(neurons=int(x.numel()), shape=list(x.shape[1:]))
            neurons += entry['neurons']
            layers.append(entry)
        x = y
    weight_bytes = weights * (1 if precision == 'int8' else
                              _BYTES[precision])
    return dict(neurons=neurons, synapses=synapses, weights=weights,
                weight_bytes=weight_bytes,
                state_bytes=state_elems * _BYTES[precision], layers=layers)
