"""Observe the spikes of every neuron during one forward call.

A context manager attaches forward hooks to each :class:`BaseNeuron` of a
model and records, per sample, the mean of its output over time and neurons
(the firing rate for spiking neurons, the mean activation for analog ones).
The hooks are removed on exit: nothing stays attached to the model.

A layer that runs its neuron step by step inside its own forward (a plastic
layer, whose weights change every step) declares ``emits_spikes = True``:
its own ``[T, B, ...]`` output is then observed instead.
"""
import contextlib

from bidl_train.neurons.base import BaseNeuron


def neuron_layers(model):
    """``(name, module)`` of every spike source in ``model``, in order.

    Spike sources are neurons, and layers flagged ``emits_spikes``; the
    neurons inside a flagged layer are skipped (they never see a
    multi-step call).
    """
    found, inside = [], []
    for name, module in model.named_modules():
        if any(name.startswith(prefix + '.') for prefix in inside):
            continue
        if getattr(module, 'emits_spikes', False):
            inside.append(name)
            found.append((name, module))
        elif isinstance(module, BaseNeuron):
            found.append((name, module))
    return found


@contextlib.contextmanager
def hooked_spike_sources(model, make_hook):
    """Attach ``make_hook(name)`` as a forward hook to every spike source of
    ``model`` for the duration of the block; removed on exit."""
    handles = [module.register_forward_hook(make_hook(name))
               for name, module in neuron_layers(model)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def record_firing_rates(model):
    """Yield a dict filled with ``{layer name: Tensor[B]}`` per-sample rates.

    Outputs are ``[T, B, ...]``; the rate of sample ``b`` is the mean over
    time and every neuron. A layer called several times in one forward keeps
    the mean of its calls.
    """
    rates, calls = {}, {}

    def make_hook(name):

        def hook(module, args, output):
            out = output[0] if isinstance(output, tuple) else output
            rate = out.detach().float().transpose(0, 1).flatten(1).mean(1)
            n = calls.get(name, 0)
            rates[name] = rate if n == 0 else (rates[name] * n + rate) / (n + 1)
            calls[name] = n + 1

        return hook

    with hooked_spike_sources(model, make_hook):
        yield rates
