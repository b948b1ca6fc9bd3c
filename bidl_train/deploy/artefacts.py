"""Files written beside every exported graph: initial state and manifest.

A deployment runtime needs three things besides the graph to use the
state-aware form: the names and order of the state inputs/outputs, their
initial values, and which axis is the batch. ``initial_state.npz`` holds
the initial values for one sample (batch axis of size 1; scalars such as
the head's step count, and states shared by the batch such as a persistent
plastic layer's local weight, have no batch axis) and ``manifest.json``
says the rest (``batch_axis`` per tensor), so the artefacts are usable
without bidl-train installed.
"""
import json
import os.path as osp

import numpy as np

__all__ = ['write_initial_state', 'read_initial_state', 'write_manifest',
           'teacher_spec']


def write_initial_state(out_dir, names, tensors):
    path = osp.join(out_dir, 'initial_state.npz')
    np.savez(path, **{name: t.detach().cpu().numpy()
                      for name, t in zip(names, tensors)})
    return path


def read_initial_state(path, names):
    with np.load(path) as data:
        return [data[name] for name in names]


def tensor_spec(name, tensor, shared=(), batch_axis=0):
    """``shared``: names of tensors without a batch axis; ``batch_axis``:
    where the batch is otherwise (1 for a ``[T, B, ...]`` sequence)."""
    shape = list(tensor.shape)
    batched = bool(shape) and name not in shared
    return dict(name=name, shape=shape, dtype=str(tensor.dtype).replace(
        'torch.', ''), batch_axis=batch_axis if batched else None)


def teacher_spec(step_net):
    """The manifest/report entry of the ``teacher`` input of ``step_net``
    (None where no layer learns from labels): name, dtype, shape, where it
    goes, what it means, and the layers (with their rule) that read it."""
    if not step_net.needs_teacher:
        return None
    rules = {source: type(node.layer.rule).__name__
             for source, node in zip(step_net.sources, step_net.nodes)
             if node.needs_teacher}
    return dict(
        name='teacher', dtype='int64', shape=['batch'], batch_axis=0,
        position="step graph: right after 'x'; unrolled graph: right after "
        "'x_seq' (the same labels for every step)",
        meaning='the class label of each sample, the teaching signal of '
        'the layers that learn at inference from a reward; -1: no label, '
        'no reward update from that sample (its traces and spike counts '
        'still advance, and a layer with forgetting still forgets). Labels '
        'must be below num_classes (not checked in the graph)',
        layers=rules)


def write_manifest(out_dir, **content):
    path = osp.join(out_dir, 'manifest.json')
    with open(path, 'w') as f:
        json.dump(content, f, indent=2)
    return path
