"""Plastic layers (``PlasticFcLif``, ``PlasticConv2dLif``).

Learning off at inference (a persistent layer in eval mode with
``learning`` None, or ``learning=False``): the layer applies ``I = (W_g +
L) x + b`` with ``L`` constant (its buffer; zeros for a fast layer), an
ordinary conv/linear with weight ``W_g + L``: folded, exactly.

Learning on (``plasticity='fast'``, or ``learning=True``): a
:class:`~..nodes.PlasticNode`, with the local weight and the rule's traces
as explicit state and the local update in the graph. A rule that needs a
teaching signal (``RewardSTDP`` with its gate on) makes the node take
labels: the exported graphs then get a ``teacher`` input (int64 ``[B]``,
``-1``: no label, no reward), see :attr:`~..lower.LoweredNet.
teacher_layers`. Other rules that need a teacher are refused by name
(their use of the labels is not known to be plain tensor ops).
"""
import copy

import torch
from torch import nn

from bidl_train.learning.plastic import PlasticConv2dLif, PlasticFcLif
from bidl_train.learning.rules.stdp import RewardSTDP
from ..lower import LAYER_LOWERINGS, LoweringError
from ..nodes import PlasticNode


@LAYER_LOWERINGS.register(PlasticFcLif, PlasticConv2dLif)
def lower_plastic(lowerer, module, source, state_path):
    # eval-mode semantics of learning_active(): the deployed network
    # infers, so a persistent layer with learning=None does not learn
    learning = (module.plasticity == 'fast' if module.learning is None
                else bool(module.learning))
    if learning:
        _learning(lowerer, module, source, state_path)
    else:
        _folded(lowerer, module, source, state_path)


def _folded(lowerer, module, source, state_path):
    synapse = getattr(module, 'linear', None) or module.conv
    merged = copy.deepcopy(synapse)
    merged.weight.data = synapse.weight.detach().clone()
    if module.plasticity == 'persistent':
        merged.weight.data += module.local_weight.detach().reshape(
            synapse.weight.shape)
    part = 'linear' if isinstance(merged, nn.Linear) else 'conv'
    lowerer.weighted(merged, f'{source}.{part}')
    lowerer.note(
        f'{type(module).__name__} {source}: learning off at inference, '
        'constant local weight folded into the global weight (W_g + L'
        + (')' if module.plasticity == 'persistent' else ', L = 0)'))
    fold = lowerer.folds_batchnorm(module.neuron)
    for part in ('pool', 'norm'):
        sub = getattr(module, part, None)
        if sub is not None:
            lowerer.stateless(sub, f'{source}.{part}', fold)
    lowerer.neuron(module.neuron, f'{source}.neuron', f'{state_path}.neuron')
    lowerer.folded_states.append(f'{state_path}.local')


def _learning(lowerer, module, source, state_path):
    name, rule = type(module).__name__, module.rule
    if rule.needs_teacher and not isinstance(rule, RewardSTDP):
        # RewardSTDP's reward is plain tensor ops on the labels (a one-hot
        # by comparison, -1 matching no class); another rule may branch on
        # them in Python, which a trace would freeze
        raise LoweringError(
            f'layer {source}: {name} learns at inference with rule '
            f'{type(rule).__name__}, which needs a teaching signal; '
            'bidl-deploy gives the exported graph a teacher input for '
            'RewardSTDP only. Deploy with learning=False (the learned '
            'local weight is folded) or use RewardSTDP')
    # the neuron kind must be deployable (refused by name otherwise)
    lowerer.neuron_node(module.neuron, f'{source}.neuron')
    out_features, in_features = module.local_shape
    persistent = module.plasticity == 'persistent'
    # the rule's state keys, from its own init_state (the shapes do not
    # matter here: one sample, one position)
    keys = list(rule.init_state(torch.zeros(1, 1, in_features),
                                torch.zeros(1, 1, out_features), persistent))
    node = PlasticNode(module, keys)
    lowerer.add(node, source, state_path, spike_source=f'{source}.neuron')
    lowerer.note(
        f'{name} {source}: learns at inference ({type(rule).__name__}, '
        f'plasticity={module.plasticity!r}); local weight and rule state '
        'exported as state, the local update runs in the graph'
        + ('; local weight shared by the batch (no batch axis)'
           if persistent else '')
        + ('; reward from the graph input teacher (labels [B], -1: no '
           'reward)' if node.needs_teacher else ''))
