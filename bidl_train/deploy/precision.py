"""Reduced-precision variants of a lowered network.

* ``fp16``: every weight, parameter, activation and state in half precision,
  as Lynxi's chip computes. Inputs are cast to half by the caller.
* ``int8``: weights of every conv/linear quantised symmetrically to int8 with
  one scale per output channel (``scale = max|w| / 127``), dequantised in
  the graph; activations, membrane potentials and thresholds stay fp32.
  Weights inside a branching backbone (a ``StatefulNode``: ResNetLif,
  SEWResNet, FastTextLif, Spikformer) and inside a plastic layer that
  learns at inference (a ``PlasticNode``, whose local weight is fp32 state)
  run the model's own modules and stay fp32; the notes say so.

The conversion acts on the :class:`StepNet` built from the lowered nodes;
the accuracy change it causes is measured by verification, not assumed.
"""
import copy

import torch

from .base import PRECISIONS
from .nets import StepNet
from .nodes import PlasticNode, StatefulNode, WeightedNode

__all__ = ['prepare', 'input_dtype']


def input_dtype(precision):
    return torch.float16 if precision == 'fp16' else torch.float32


def prepare(lowered, precision):
    """A :class:`StepNet` in ``precision`` and notes on what changed."""
    if precision not in PRECISIONS:
        raise ValueError(precision)
    # a copy: the lowered fp32 nodes stay intact for the resource count
    net = StepNet(copy.deepcopy(lowered)).eval()
    notes = []
    if precision == 'fp16':
        net = net.half()
        notes.append('weights, parameters, activations and states in fp16')
    elif precision == 'int8':
        count = 0
        for node in net.nodes:
            if isinstance(node, WeightedNode):
                node.quantize_int8()
                count += 1
        notes.append(f'{count} conv/linear weights quantised to int8 with '
                     'per-output-channel scales; activations and states '
                     'fp32')
        inner = [layer.source for layer in lowered.layers
                 if isinstance(layer.node, (StatefulNode, PlasticNode))]
        if inner:
            notes.append('weights inside ' + ', '.join(inner) + ' (branching'
                         ' backbone or learning plastic layer) stay fp32 '
                         'under int8')
    return net, notes
