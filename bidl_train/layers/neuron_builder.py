"""Build the neuron of a spiking layer from its config.

Layers pass the per-sample shape they feed the neuron (``feature_shape``,
channel first, ``None`` for sizes unknown at construction such as a conv
layer's height and width); the config may override it.
"""
from bidl_train.errors import ConfigError
from bidl_train.neurons import BaseNeuron, build_module

__all__ = ['build_neuron']


def build_neuron(spec, feature_shape, owner):
    """A :class:`BaseNeuron` from a module, a type name or a config dict."""
    if isinstance(spec, BaseNeuron):
        return spec
    if isinstance(spec, str):
        spec = dict(type=spec)
    if not isinstance(spec, dict):
        raise ConfigError(f'{owner}: neuron must be a config dict such as '
                          f"dict(type='LIF') or a neuron module; got {spec!r}")
    cfg = dict(spec)
    cfg.setdefault('feature_shape', feature_shape)
    cfg.setdefault('name', f'{owner}.neuron')
    neuron = build_module(cfg, owner, 'neuron')
    if not isinstance(neuron, BaseNeuron):
        raise ConfigError(f'{owner}: neuron type {spec.get("type")!r} is not '
                          'a spiking neuron (a BaseNeuron subclass)')
    return neuron
