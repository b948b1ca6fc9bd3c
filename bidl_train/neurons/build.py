"""Build a module from a name, a config dict or an instance.

mmengine's root MODELS registry does not hold torch's own layers, so a config
such as ``dict(type='Conv2d', ...)`` or an activation name ``'ReLU'`` would not
resolve through :data:`bidl_train.registry.MODELS` alone. :func:`build_module`
looks the type up in MODELS first and then among ``torch.nn``'s module classes.
"""
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.registry import MODELS

__all__ = ['build_module']


def _resolve(kind):
    if isinstance(kind, type):
        return kind
    cls = MODELS.get(kind)
    if cls is None:
        cls = getattr(nn, kind, None)
    return cls


def build_module(spec, owner, what='module'):
    """Return an ``nn.Module`` for ``spec``.

    ``spec``: an ``nn.Module`` (returned as is), a type name (``'ReLU'``,
    ``'LIF'``) or a dict with ``type`` and keyword arguments. ``owner`` and
    ``what`` name the place in error messages.
    """
    if isinstance(spec, nn.Module):
        return spec
    if isinstance(spec, str):
        spec = dict(type=spec)
    if not isinstance(spec, dict) or 'type' not in spec:
        raise ConfigError(
            f'{owner}: {what} must be a module, a type name or a dict with a '
            f'"type" key; got {spec!r}')
    cfg = dict(spec)
    kind = cfg.pop('type')
    cls = _resolve(kind) if isinstance(kind, (str, type)) else None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ConfigError(
            f'{owner}: unknown {what} type {kind!r}: not registered in '
            'bidl_train MODELS and not a torch.nn module class')
    try:
        return cls(**cfg)
    except TypeError as err:
        raise ConfigError(
            f'{owner}: bad arguments for {what} {kind!r}: {err}') from err
