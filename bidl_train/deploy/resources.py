"""What a deployed network needs on a chip: neurons, synapses, fan-in, state.

Counted per sample on the lowered network by running one step and reading
every node's input and output shapes:

* neurons: the elements a neuron layer integrates (its membrane size);
* synapses: connections of each conv/linear, ``fan_in * outputs``, where
  ``fan_in`` is what one output reads (``in_channels / groups * kernel``
  for a conv, ``in_features`` for a linear); a plastic layer's global and
  local weights act on the same synapses and count once;
* state bytes: all state tensors of one sample at the deployed precision
  (every neuron state: membranes, adaptation, synaptic currents ...; a
  plastic layer's local weight and rule traces; the head's running sum and
  step count). Counted on a batch of one, so a state shared by the batch
  (a persistent local weight) counts once.
"""
import torch

from .nets import StepNet
from torch import nn

from .nodes import (LIFNode, NeuronNode, PlasticNode, StatefulNode,
                    WeightedNode)

__all__ = ['resource_summary']

_BYTES = {'fp32': 4, 'fp16': 2, 'int8': 4}  # int8: weights only


def _inside(node, source, x, fresh):
    """Entries for the convs/linears and neurons inside a StatefulNode or a
    PlasticNode, read from their input and output shapes during one step."""
    entries, handles = [], []

    def weighted(name):
        def hook(module, inputs, out):
            fan_in = int(module.weight[0].numel())
            entries.append(dict(
                layer=name, kind=type(module).__name__,
                op=type(module).__name__.lower(), fan_in=fan_in,
                synapses=fan_in * int(out[:1].numel()),
                weights=int(module.weight.numel()),
                output_shape=list(out.shape[1:])))
        return hook

    module = node.module if isinstance(node, StatefulNode) else node.layer
    for name, sub in module.named_modules(prefix=source):
        if isinstance(sub, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            handles.append(sub.register_forward_hook(weighted(name)))
    try:
        y, _, _ = node.step(x, fresh)
    finally:
        for handle in handles:
            handle.remove()
    if isinstance(node, StatefulNode):
        # every state of a neuron is shaped like its membrane
        for name, key, inner in zip(node.neuron_names, node.keys,
                                    node.neurons):
            state = fresh[f'{key}.{inner.state_names[0]}']
            entries.append(dict(layer=name, kind=type(inner).__name__,
                                neurons=int(state[:1].numel()),
                                shape=list(state.shape[1:])))
    else:  # a plastic layer: its neuron's first state is the membrane
        state = fresh[node.state_names[0]]
        entries.append(dict(layer=f'{source}.neuron', kind='PlasticNode',
                            neurons=int(state[:1].numel()),
                            shape=list(state.shape[1:])))
    return y, entries


@torch.no_grad()
def resource_summary(lowered, x_t, precision='fp32'):
    net = StepNet(lowered).eval()
    x = x_t[:1] if not x_t.is_floating_point() else x_t[:1].float()
    layers, neurons, synapses, weights, state_elems = [], 0, 0, 0, 0
    inner_weights = 0  # inside Stateful/PlasticNodes: int8 keeps fp32
    for layer, node in zip(lowered.layers, net.nodes):
        fresh = node.init_state(x)
        if isinstance(node, (StatefulNode, PlasticNode)):
            y, entries = _inside(node, layer.source, x, fresh)
            for entry in entries:
                synapses += entry.get('synapses', 0)
                weights += entry.get('weights', 0)
                inner_weights += entry.get('weights', 0)
                neurons += entry.get('neurons', 0)
            layers.extend(entries)
            state_elems += sum(t.numel() for t in fresh.values())
            x = y
            continue
        y, _, _ = node.step(x, fresh)
        state_elems += sum(t.numel() for t in fresh.values())
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
        elif isinstance(node, (LIFNode, NeuronNode)):
            entry.update(neurons=int(x.numel()), shape=list(x.shape[1:]))
            neurons += entry['neurons']
            layers.append(entry)
        x = y
    if precision == 'int8':
        weight_bytes = (weights - inner_weights) + 4 * inner_weights
    else:
        weight_bytes = weights * _BYTES[precision]
    return dict(neurons=neurons, synapses=synapses, weights=weights,
                weight_bytes=weight_bytes,
                state_bytes=state_elems * _BYTES[precision], layers=layers)
