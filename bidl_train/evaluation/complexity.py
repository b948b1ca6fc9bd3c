"""Complexity of a spiking network: parameters, MACs, SynOps, energy, memory.

Counts are per sample and per inference (all T steps), measured with
forward hooks on every ``Conv1d/2d/3d`` and ``Linear`` of the model while it
runs real batches (time folded into the batch, ``[T*B, ...]``, or one step
at a time: either way the hook sees every step once).

* ANN-equivalent MACs of a layer: ``outputs x fan_in`` with
  ``fan_in = C_in / groups * prod(kernel)`` (conv) or ``in_features``
  (linear): what the layer costs when every input is dense.
* SynOps of a layer whose input is spikes (non-negative integers, e.g. 0/1
  spikes or SEW-ADD's 0/1/2): ``sum over input elements of value x
  fan-out``, where the fan-out of an element is the number of output
  neurons it connects to (``out_features`` for linear; for conv the count
  of output positions whose window covers it, border effects included,
  times ``C_out / groups``). Each spike triggers one accumulate (AC) per
  synapse. It is computed exactly as ``sum(conv(x, ones))``.
* A layer whose input is not integer-valued (analog frames, LIAF outputs,
  BatchNorm'ed inputs) is charged its dense MACs.
* Energy (45 nm CMOS, Horowitz 2014): ``E_MAC = 4.6 pJ``, ``E_AC = 0.9 pJ``;
  ``E = 4.6 pJ x MACs(non-spiking inputs) + 0.9 pJ x SynOps``, per layer
  and in total, beside the ANN energy ``4.6 pJ x all MACs``.
* Input firing rate of a layer: non-zero input elements / input elements.

Training memory is measured, not estimated: the bytes of the tensors
autograd saves for backward in one training forward (unique storages,
parameters excluded, ``torch.autograd.graph.saved_tensors_hooks``) at batch ``b``, scaled
linearly to the config's batch size, plus parameters, gradients and
optimizer state (``state_per_param`` copies: 2 for Adam, 1 for SGD with
momentum) computed from the parameter count.
"""
import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from bidl_train.errors import ConfigError

__all__ = ['E_MAC_PJ', 'E_AC_PJ', 'LayerCounter', 'count_complexity',
           'count_parameters', 'measure_training_memory', 'synops_of']

E_MAC_PJ = 4.6
E_AC_PJ = 0.9
_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_CONV_FN = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def count_parameters(model):
    """Number of parameters (trainable and frozen)."""
    return sum(p.numel() for p in model.parameters())


def _is_spiking(x):
    """Non-negative integers only: every element is a spike count."""
    return bool((x >= 0).all()) and bool((x == torch.round(x)).all())


def macs_of(module, x, y):
    """Dense multiply-accumulates of one call (all rows of the batch)."""
    if isinstance(module, nn.Linear):
        return y.numel() * module.in_features
    fan_in = module.in_channels // module.groups * math.prod(
        module.kernel_size)
    return y.numel() * fan_in


def synops_of(module, x):
    """``sum_i x_i * fan_out_i`` for one call (see the module docstring)."""
    x = x.detach().float()
    if isinstance(module, nn.Linear):
        return float(x.sum()) * module.out_features
    dims = x.dim() - 2
    n, c = x.shape[:2]
    g = module.groups
    per_group = x.reshape(n, g, c // g, *x.shape[2:]).sum(2)
    ones = torch.ones((g, 1) + tuple(module.kernel_size), dtype=x.dtype)
    if module.padding_mode != 'zeros':
        raise ConfigError(
            f'complexity: {type(module).__name__} uses padding_mode='
            f'{module.padding_mode!r}; only zero padding is counted')
    windows = _CONV_FN[dims](per_group, ones, stride=module.stride,
                             padding=module.padding,
                             dilation=module.dilation, groups=g)
    return float(windows.sum()) * (module.out_channels // g)


class LayerCounter:
    """Hooks on every conv/linear layer accumulating counts over calls."""

    def __init__(self, model):
        self.model = model
        self.layers = {}
        self._handles = []

    def __enter__(self):
        for name, module in self.model.named_modules():
            if isinstance(module, _LAYERS):
                self.layers[name] = dict(
                    type=type(module).__name__, macs=0.0, synops=0.0,
                    dense_macs=0.0, input_elements=0, input_nonzero=0,
                    spiking_input=True)
                self._handles.append(
                    module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _hook(self, name):

        def hook(module, args, output):
            x = args[0]
            rec = self.layers[name]
            macs = macs_of(module, x, output)
            rec['macs'] += macs
            rec['input_elements'] += x.numel()
            rec['input_nonzero'] += int((x != 0).sum())
            if _is_spiking(x):
                rec['synops'] += synops_of(module, x)
            else:
                rec['spiking_input'] = False
                rec['dense_macs'] += macs

        return hook


def count_complexity(model, batches, forward=None):
    """Per-sample complexity report over ``batches``.

    Args:
        model: the network (put in eval mode by the caller).
        batches: iterable of inputs ``[T, B, ...]`` (or whatever
            ``forward`` takes); the batch size is read from dim 1.
        forward: callable ``(model, inputs)``; default ``model(inputs)``.

    Returns a dict with ``layers`` (name -> counts, per sample) and
    ``total`` (params, macs, synops, dense_macs, energy_pj, ann_energy_pj,
    samples).
    """
    forward = forward or (lambda m, x: m(x))
    samples = 0
    with LayerCounter(model) as counter, torch.no_grad():
        for inputs in batches:
            samples += inputs.shape[1]
            forward(model, inputs)
    if samples == 0:
        raise ConfigError('complexity: no batches to measure')
    layers = {}
    total = dict(macs=0.0, synops=0.0, dense_macs=0.0, energy_pj=0.0)
    for name, rec in counter.layers.items():
        if rec['input_elements'] == 0:
            continue  # not called (e.g. an unused branch)
        macs = rec['macs'] / samples
        synops = rec['synops'] / samples if rec['spiking_input'] else 0.0
        dense = macs if not rec['spiking_input'] else 0.0
        energy = E_MAC_PJ * dense + E_AC_PJ * synops
        layers[name] = dict(
            type=rec['type'], macs=macs, synops=synops, dense_macs=dense,
            input_rate=rec['input_nonzero'] / rec['input_elements'],
            spiking_input=rec['spiking_input'], energy_pj=energy)
        total['macs'] += macs
        total['synops'] += synops
        total['dense_macs'] += dense
        total['energy_pj'] += energy
    total['ann_energy_pj'] = E_MAC_PJ * total['macs']
    total['params'] = count_parameters(model)
    total['samples'] = samples
    return dict(layers=layers, total=total)


@contextlib.contextmanager
def _saved_bytes(model):
    """Bytes of the saved activations; parameters are counted apart."""
    seen = {(p.untyped_storage().data_ptr(), p.device)
            for p in model.parameters()}
    box = [0]

    def pack(t):
        key = (t.untyped_storage().data_ptr(), t.device)
        if key not in seen:
            seen.add(key)
            box[0] += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield box


def measure_training_memory(model, inputs, batch_size, loss_fn=None,
                            state_per_param=2):
    """Training memory in bytes at ``batch_size`` (see the module doc).

    ``inputs`` is one training batch ``[T, b, ...]``; activations are
    measured at ``b`` and scaled by ``batch_size / b``.
    """
    measured_batch = inputs.shape[1]
    # a copy: a slice of a larger batch shares its whole storage, which the
    # count would include (and scale) as soon as a layer saves its input
    inputs = inputs.clone()
    loss_fn = loss_fn or (lambda m, x: m(x).float().sum())
    was_training = model.training
    model.train()
    try:
        with _saved_bytes(model) as box:
            loss = loss_fn(model, inputs)
        del loss
    finally:
        model.train(was_training)
    activations = box[0] * batch_size / measured_batch
    param_bytes = sum(p.numel() * p.element_size()
                      for p in model.parameters())
    return dict(
        activations=activations,
        parameters=param_bytes,
        gradients=param_bytes,
        optimizer_state=param_bytes * state_per_param,
        total=activations + param_bytes * (2 + state_per_param),
        measured_batch=measured_batch,
        batch_size=batch_size,
        method='activations measured (autograd saved tensors) and scaled '
        'linearly in batch; parameters/gradients/optimizer state computed')
