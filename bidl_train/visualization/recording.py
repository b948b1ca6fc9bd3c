"""Observe the neurons of a model during one forward call.

:func:`record_activity` attaches forward hooks to every :class:`BaseNeuron`
of a model (each neuron's multi-step ``[T, B, ...]`` output is visible to a
forward hook) and removes them on exit, so nothing stays attached; it keeps
the outputs, and optionally the inputs, of chosen samples for plots. (The
per-layer statistics of a training forward, which keep no tensor, are
:func:`bidl_train.engine.hooks.spike_monitor.observe_layer_stats`.)

The membrane potential is state, not output. :func:`membrane_trace` replays a
neuron's single-step form ``step()`` over the input it received in the
multi-step call (recorded by :func:`record_activity`) and returns its state
tensors at every step. The two forms give the same numbers by the neuron
protocol, so the replay shows exactly the membrane of the observed call; no
flag on the neuron and no change to its code is needed.
"""
import contextlib
from dataclasses import dataclass
from typing import Optional

import torch

from bidl_train.models.monitor import hooked_spike_sources
from bidl_train.utils.state import flatten_state

__all__ = [
    'NeuronActivity', 'Threshold', 'firing_threshold', 'membrane_thresholds',
    'membrane_trace', 'record_activity'
]

# the state holding the membrane potential, in every neuron of the library
POTENTIAL = 'v'


def _output_tensor(output):
    return output[0] if isinstance(output, tuple) else output


@dataclass
class NeuronActivity:
    """What one neuron layer received and emitted in a multi-step call."""
    module: torch.nn.Module
    output: torch.Tensor  # [T, b, ...] for the kept samples
    input: Optional[torch.Tensor] = None  # [T, b, ...], with keep_inputs


@contextlib.contextmanager
def record_activity(model, samples=None, keep_inputs=False):
    """Yield a dict filled with ``{layer name: NeuronActivity}``.

    Args:
        model: any module holding neurons.
        samples (list[int], optional): batch indices to keep (all if None).
        keep_inputs (bool): also keep the input of each neuron layer, which
            :func:`membrane_trace` needs.

    Only the first call of a layer within the forward is kept.
    """
    records = {}

    def select(tensor):
        tensor = tensor.detach()
        if samples is not None:
            tensor = tensor[:, list(samples)]
        return tensor.cpu()

    def make_hook(name):

        def hook(module, args, output):
            if name in records:
                return
            records[name] = NeuronActivity(
                module=module,
                output=select(_output_tensor(output)),
                input=select(args[0]) if keep_inputs and args else None)

        return hook

    with hooked_spike_sources(model, make_hook):
        yield records


@torch.no_grad()
def membrane_trace(neuron, x_seq):
    """Replay ``neuron.step`` over ``x_seq [T, B, ...]``.

    Returns ``{state name: Tensor[T, B, ...]}``: the state after each step
    (for the LIF, ``v`` is the potential after reset and leak). The neuron
    runs in evaluation mode (no training noise; a membrane BatchNorm uses
    its running statistics, which the replay leaves untouched) and its
    previous mode is restored.
    """
    was_training = neuron.training
    neuron.eval()
    try:
        param = next(iter(neuron.buffers()), None)
        if param is None:
            param = next(iter(neuron.parameters()), None)
        device = param.device if param is not None else x_seq.device
        state, trace = None, {}
        for x_t in x_seq.to(device).unbind(0):
            _, state = neuron.step(x_t, state)
            # nested states (a plastic layer's neuron and rule) by dotted name
            for key, value in flatten_state(state).items():
                trace.setdefault(key, []).append(value.detach().cpu())
        return {key: torch.stack(values, 0) for key, values in trace.items()}
    finally:
        neuron.train(was_training)


@dataclass(frozen=True)
class Threshold:
    """A layer's firing threshold: ``low == high`` when one value holds for
    every neuron, else the range of its per-channel/per-neuron values."""
    low: float
    high: float
    name: str = 'threshold'  # 'theta', 'v_theta', 'v_peak'
    note: str = ''  # e.g. ALIF: its baseline, the threshold adapts

    @property
    def uniform(self):
        return self.low == self.high

    def label(self):
        value = (f'{self.low:.3g}' if self.uniform else
                 f'{self.low:.3g} to {self.high:.3g} (per neuron)')
        return f'{self.name} = {value}' + (f' {self.note}' if self.note
                                           else '')


def firing_threshold(neuron):
    """The :class:`Threshold` a neuron module fires at, or None.

    Read from the module: LIFPlus's ``threshold()`` (``theta``, or
    ``v_theta`` with EXI/QDI initiation), the ``theta`` of the LIF family
    (for ALIF its baseline: the threshold rises with every spike), or
    Izhikevich's ``v_peak``.
    """
    if callable(getattr(neuron, 'threshold', None)):
        value = neuron.threshold()
        name = 'theta' if getattr(neuron, 'spike_init', None) is None \
            else 'v_theta'
    elif getattr(neuron, 'theta', None) is not None:
        value, name = neuron.theta, 'theta'
    elif getattr(neuron, 'v_peak', None) is not None:
        value, name = neuron.v_peak, 'v_peak'
    else:
        return None
    values = torch.as_tensor(value).detach().float()
    note = '(baseline; adapts)' if hasattr(neuron, 'beta_a') else ''
    return Threshold(low=float(values.min()), high=float(values.max()),
                     name=name, note=note)


def membrane_thresholds(module, states):
    """``{state name: Threshold}`` for the potential states of ``states``.

    ``states`` are the names :func:`membrane_trace` returns; a nested name
    (``'neuron.v'`` of a plastic layer) is looked up on the submodule that
    holds it.
    """
    found = {}
    for state in states:
        *path, leaf = state.split('.')
        if leaf != POTENTIAL:
            continue
        owner = module
        for part in path:
            owner = getattr(owner, part, None)
        threshold = firing_threshold(owner) if owner is not None else None
        if threshold is not None:
            found[state] = threshold
    return found
