"""Collect every reason a model cannot be deployed, not only the first.

The lowering (:mod:`.lower`) and the targets' checks refuse a model by
raising at the first layer they cannot express. That is right for an
export (nothing is written for a refused model), but a user fixing a
config wants all the blockers at once. So the places that lower or check
one layer wrap it in :func:`refusals`::

    with refusals(source):
        lowering(lowerer, module, source, state_path)

Outside :func:`collecting` this changes nothing: the refusal raises as
before. Inside it, the refusal is recorded as a :class:`Blocker` and the
walk goes on with the next layer. Only refusals are collected
(:class:`~.lower.LoweringError`, :class:`~.base.UnsupportedFeature`); any
other error still raises.
"""
import contextvars
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from .base import UnsupportedFeature

__all__ = ['Blocker', 'collecting', 'refusals']

_ACTIVE = contextvars.ContextVar('bidl_deploy_blockers', default=None)


@dataclass
class Blocker:
    """One thing a target cannot express.

    ``layer``: the module path in the model; ``feature``: what about it
    (the refusal's own words, without the layer); ``message``: the whole
    one-line refusal, as an export would raise it.
    """
    layer: str
    feature: str
    message: str

    def as_dict(self):
        return asdict(self)


def _is_refusal(err):
    from .lower import LoweringError  # lower imports this module
    return isinstance(err, (UnsupportedFeature, LoweringError))


def _blocker(err, layer):
    message = str(err)
    if isinstance(err, UnsupportedFeature):
        return Blocker(err.layer, err.feature, message)
    # LoweringError: 'layer <path>: <what>' (or a whole-model refusal)
    prefix = f'layer {layer}: '
    feature = message[len(prefix):] if message.startswith(prefix) else \
        message
    return Blocker(layer, feature, message)


@contextmanager
def collecting():
    """Inside: refusals are recorded in the yielded list, not raised."""
    blockers = []
    token = _ACTIVE.set(blockers)
    try:
        yield blockers
    finally:
        _ACTIVE.reset(token)


@contextmanager
def refusals(layer):
    """Around the lowering or check of the layer at path ``layer``: in
    collecting mode a refusal raised inside is recorded (once) and
    swallowed, so the caller goes on with the next layer."""
    try:
        yield
    except Exception as err:
        blockers = _ACTIVE.get()
        if blockers is None or not _is_refusal(err):
            raise
        blocker = _blocker(err, layer)
        if blocker not in blockers:
            blockers.append(blocker)
