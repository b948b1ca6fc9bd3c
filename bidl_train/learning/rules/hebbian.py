"""Correlation rules: trace-based Hebbian and Oja's normalised Hebbian.

Notation of :mod:`bidl_train.learning.rules.base`: ``x̄`` presynaptic trace,
``ȳ`` postsynaptic trace (both include the current step), ``η`` learning
rate, ``⟨·⟩`` the mean over shared positions (and over the batch for a
weight shared by the batch).
"""
from bidl_train.registry import LEARNING_RULES
from .base import LocalRule, check_number

__all__ = ['Hebbian', 'Oja']


@LEARNING_RULES.register_module()
class Hebbian(LocalRule):
    """Trace-based Hebbian learning with optional weight decay::

        ΔW_oi = η ⟨ȳ_o x̄_i⟩ − γ W_oi

    "Cells that fire together wire together": the product of the two traces
    lets a presynaptic spike that shortly precedes (or follows) a
    postsynaptic spike count, in proportion to how recent it was. With both
    decays 0 it is the plain rate product ``η ⟨y_o x_i⟩``. ``γ``
    (``weight_decay``) keeps the weights from growing without bound; the
    bounds ``[w_min, w_max]`` clip them.
    """

    def __init__(self, lr=0.01, pre_decay=0.0, post_decay=0.0,
                 weight_decay=0.0, w_min=None, w_max=None):
        super().__init__(lr, pre_decay, post_decay, w_min, w_max)
        self.weight_decay = check_number('Hebbian', 'weight_decay',
                                         weight_decay, 0)

    def delta(self, pre, post, weight, state, teacher=None):
        pre_trace, post_trace = self.traces(pre, post, state)
        shared = weight.dim() == 2
        dw = self.lr * self.outer(post_trace, pre_trace, shared)
        if self.weight_decay:
            dw = dw - self.weight_decay * weight
        return dw, {'pre_trace': pre_trace, 'post_trace': post_trace}


@LEARNING_RULES.register_module()
class Oja(LocalRule):
    """Oja's rule, Hebbian learning with built-in normalisation::

        ΔW_oi = η ( ⟨ȳ_o x̄_i⟩ − ⟨ȳ_o²⟩ W_oi )

    The decay term ``ȳ² W`` drives the weight vector of each output towards
    unit norm and towards the principal component of its input (Oja, 1982),
    so no explicit bound is needed (bounds still apply when given).
    """

    def delta(self, pre, post, weight, state, teacher=None):
        pre_trace, post_trace = self.traces(pre, post, state)
        shared = weight.dim() == 2
        hebb = self.outer(post_trace, pre_trace, shared)
        forget = self.post_mean(post_trace * post_trace, shared) * weight
        dw = self.lr * (hebb - forget)
        return dw, {'pre_trace': pre_trace, 'post_trace': post_trace}
