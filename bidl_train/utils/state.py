"""The one state protocol of every spiking module, and its dotted names.

A spiking module runs in two forms with the same numbers: multi-step
``y_seq = module(x_seq)`` on ``[T, B, ...]`` (every call starts fresh, no
state is kept on the module) and single-step ``y_t, state =
module.step(x_t, state)`` on ``[B, ...]``, where the state is explicit.
Every module, from a neuron to a whole classifier, carries that state the
same way:

* **A state is a dict** with string keys whose values are tensors or
  (nested) states. ``None`` (for the whole state or for any entry), or a
  missing entry, means "fresh": the module creates it on its first step.
  Stateless modules (``TimeFold``-wrapped convs, pooling ...) return
  ``None``.
* **``init_state(x_t)``** returns the fresh state for an input step
  ``x_t`` where its shape follows from that input (neurons, plastic
  layers, aggregations, heads); ``step(x_t, None)`` is ``step(x_t,
  init_state(x_t))``. Containers need none: ``step(x_t, None)`` starts every
  child fresh.
* **Containers nest their children's states under the child's name**, and
  only the stateful ones: ``SpikingSequential`` under the layer index
  (``'0'``, ``'2'``, the name ``nn.Sequential`` gives the child), a
  branching ``StatefulModule`` under the context key of each neuron split at
  the dots (``'layer1' -> '0' -> 'lif1'``; it reads a given state by its
  dotted names, so any nesting of the same names works), a plastic layer under
  ``'neuron'``, ``'local'`` (its local weight) and ``'rule'`` (the rule's
  traces), the classifier under ``'backbone'`` and ``'head'``. A module
  that only wraps one container passes its state through unchanged
  (``ConvLifNet``'s is its ``layers``' state). Leaves are a
  neuron's own names (``v``, ``a``, ``i`` ...) or a running aggregate's
  ``sum`` and ``count``.
* **The name of a state tensor is its dotted path**:
  :func:`flatten_state` maps a nested state to ``{'backbone.0.v': t,
  'head.sum': s, 'head.count': c}`` in step order (the order the entries
  were first written), and :func:`unflatten_state` maps it back. These
  names are the exported graph's state inputs and outputs (ONNX,
  TorchScript), what deployment verification compares with ``model.step``,
  and the labels of the membrane plots; nothing walks a state another way.
* **A state with entries the module does not have is refused**
  (:func:`check_state_entries`, one ``ConfigError`` line naming them)
  rather than dropped, which would silently start those parts fresh.

Deployed nodes (:mod:`bidl_train.deploy.nodes`) hold their state as a flat
dict of these dotted names relative to the node (``v``, ``neuron.v``,
``local``, ``stem.sn.v``) in the node's ``state_names`` order; the step
graph's positional state inputs are those dicts concatenated in node order.
"""
import torch

from bidl_train.errors import ConfigError

__all__ = ['flatten_state', 'unflatten_state', 'state_at', 'put_state',
           'check_state_entries']


def flatten_state(state, prefix=''):
    """``{'backbone': {'0': {'v': t}}, ...}`` -> ``{'backbone.0.v': t}``.

    ``None`` entries (fresh, or stateless) have no tensor and no name.
    """
    flat = {}
    if state is None:
        return flat
    if torch.is_tensor(state):
        flat[prefix] = state
        return flat
    if not isinstance(state, dict):
        raise TypeError(f'state {prefix or "<root>"}: expected a dict of '
                        f'states or a tensor, got {type(state).__name__}')
    for key, value in state.items():
        name = f'{prefix}.{key}' if prefix else str(key)
        flat.update(flatten_state(value, name))
    return flat


def unflatten_state(flat):
    """``{'backbone.0.v': t}`` -> ``{'backbone': {'0': {'v': t}}}``; the
    inverse of :func:`flatten_state`, keeping the order of ``flat``."""
    state = {}
    for name, value in flat.items():
        put_state(state, name, value)
    return state


def state_at(state, path):
    """The sub-state at dotted ``path`` (``'layer1.0.lif1'``), or None when
    ``state`` holds nothing there (fresh)."""
    for key in path.split('.'):
        if state is None:
            return None
        if not isinstance(state, dict):
            raise ValueError(f'state: {path!r} runs through a tensor; a '
                             'state is a dict keyed by module names')
        state = state.get(key)
    return state


def put_state(state, path, value):
    """Store ``value`` at dotted ``path`` of the dict ``state``, creating
    the dicts on the way; a path already holding a tensor is refused."""
    *parents, leaf = path.split('.')
    node = state
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ValueError(f'state: {path!r} runs through the tensor at '
                             f'{key!r}; two state names overlap')
    if isinstance(node.get(leaf), dict) and not isinstance(value, dict):
        raise ValueError(f'state: {path!r} already holds nested states; '
                         'two state names overlap')
    node[leaf] = value
    return state


def check_state_entries(owner, state, known, keyed_by):
    """Refuse a ``step`` state that is not a dict (or None) or has entries
    outside ``known``: a state of another module or of another layout would
    otherwise be dropped silently and those parts start fresh.

    ``keyed_by`` says what the keys are, for the message (``'layer
    index'``).
    """
    if state is None:
        return
    if not isinstance(state, dict):
        raise ConfigError(
            f'{owner}: step() state must be a dict keyed by {keyed_by}, or '
            f'None to start fresh; got {type(state).__name__}')
    unknown = sorted(set(state) - set(known))
    if unknown:
        known = sorted(known)
        shown = ', '.join(known[:6]) + (', ...' if len(known) > 6 else '')
        raise ConfigError(
            f'{owner}: step() state has entries {unknown[:6]} that match no '
            f'{keyed_by} of this module (it has {shown}); pass the state its '
            'previous step returned, or None to start fresh')
