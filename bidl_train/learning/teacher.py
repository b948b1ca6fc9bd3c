"""The teaching signal of a forward call: the labels of the batch in flight.

Rules such as :class:`~bidl_train.learning.rules.RewardSTDP` learn from the
labels of the samples they see. The labels travel with the batch in
``data_samples``; the classifier's training forward
(``forward(inputs, data_samples, mode='loss')``) opens :func:`teaching` with
them around its backbone, and every plastic layer inside reads them with
:func:`current_teacher`. Nothing is stored on a module: the labels live as
long as the call, so no layer can keep a stale teacher after it, and
validation and test (``mode='predict'``/``'tensor'``) never see one.

Outside a model (a single layer, a deployed node's step) pass ``teacher=``
to :meth:`PlasticLayer.step <bidl_train.learning.PlasticLayer.step>` or
open :func:`teaching` yourself.
"""
from contextlib import contextmanager
from contextvars import ContextVar

import torch

__all__ = ['teaching', 'current_teacher', 'labels_of']

_TEACHER = ContextVar('bidl_train_teacher', default=None)


@contextmanager
def teaching(labels):
    """Labels ``[B]`` (label ``-1``: an unlabelled sample) for the rules that
    need a teaching signal, while the ``with`` block runs; None: no teacher.
    """
    if labels is not None and not isinstance(labels, torch.Tensor):
        labels = torch.as_tensor(labels)
    token = _TEACHER.set(None if labels is None else labels.long())
    try:
        yield
    finally:
        _TEACHER.reset(token)


def current_teacher():
    """The labels of the enclosing :func:`teaching` block, or None."""
    return _TEACHER.get()


def labels_of(data_samples):
    """The hard labels ``[B]`` of a batch's ``data_samples``, or None."""
    if not isinstance(data_samples, dict):
        return None
    return data_samples.get('label')
