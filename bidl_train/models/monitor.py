"""Observe the spikes of every neuron during one forward call.

A context manager attaches forward hooks to each :class:`BaseNeuron` of a
model and records, per sample, the mean of its output over time and neurons
(the firing rate for spiking neurons, the mean activation for analog ones).
The hooks are removed on exit: nothing stays attached to the model.
"""
import contextlib

from bidl_train.neurons.base import BaseNeuron


def neuron_layers(model):
    """``(name, module)`` of every neuron in ``model``, in registration order."""
    return [(name, module) for name, module in model.named_modules()
            if isinstance(module, BaseNeuron)]


@contextlib.contextmanager
def record_firing_rates(model):
    """Yield a dict filled with ``{layer name: Tensor[B]}`` per-sample rates.

    Outputs are ``[T, B, ...]``; the rate of sample ``b`` is the mean over
    time and every neuron. A layer called several times in one forward keeps
    the mean of its calls.
    """
    rates, calls, handles = {}, {}, []

    def make_hook(name):

        def hook(module, args, output):
            out = output[0] if isinstance(output, tuple) else output
            rate = out.detach().float().transpose(0, 1).flatten(1).mean(1)
            n = calls.get(name, 0)
            rates[name] = rate if n == 0 else (rates[name] * n + rate) / (n + 1)
            calls[name] = n + 1

        return hook

    for name, module in neuron_layers(model):
        handles.append(module.register_forward_hook(make_hook(name)))
    try:
        yield rates
    finally:
        for handle in handles:
            handle.remove()
