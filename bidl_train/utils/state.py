"""Flattening nested neuron state into dotted names.

Layers carry their state as nested dicts and lists (a plastic layer's
``{'neuron': {'v': ...}, 'rule': {...}}``, a sequential stack's list of
per-layer states); exporters, verification and the membrane plots name each
tensor by its dotted path instead.
"""
import torch


def flatten_state(state, prefix=''):
    """``{'backbone': [{'v': t}, None], ...}`` -> ``{'backbone.0.v': t}``."""
    flat = {}
    if state is None:
        return flat
    if torch.is_tensor(state):
        flat[prefix] = state
        return flat
    items = state.items() if isinstance(state, dict) else enumerate(state)
    for key, value in items:
        name = f'{prefix}.{key}' if prefix else str(key)
        flat.update(flatten_state(value, name))
    return flat
