"""LIF variants that only change how the leak is set: IF and PLIF.

Both keep BIDL's LIF equations (see :mod:`bidl_train.neurons.lif`), so they
share its options, both execution forms and the fused kernel.

* ``IF``: integrate-and-fire, no leak: ``alpha = 1``, i.e.
  ``v_t = r_t + beta``.
* ``PLIF``: parametric LIF (Fang et al., ICCV 2021): the leak is learned
  through an unconstrained weight ``w`` with ``alpha = sigmoid(w)``, which
  keeps ``alpha`` inside ``(0, 1)`` during training. It is initialised from a
  time constant ``tau > 1`` as ``alpha = 1 - 1/tau`` (SpikingJelly's
  ``ParametricLIFNode`` with ``decay_input=False``), so
  ``w = log(alpha / (1 - alpha)) = log(tau - 1)``.
"""
import math

import torch
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.registry import MODELS
from .lif import LIF

__all__ = ['IF', 'PLIF']


@MODELS.register_module()
class IF(LIF):
    """Integrate-and-fire: BIDL's LIF with ``alpha = 1`` fixed.

    Takes every :class:`LIF` argument except ``alpha``.
    """

    def __init__(self, **kwargs):
        if 'alpha' in kwargs:
            raise ConfigError(f'{kwargs.get("name") or "IF"}: IF has no leak '
                              '(alpha = 1); use LIF to set alpha')
        learnable = kwargs.get('learnable', ())
        if learnable is True or (not isinstance(learnable, str) and
                                 'alpha' in tuple(learnable or ())) or \
                learnable == 'alpha':
            raise ConfigError(f'{kwargs.get("name") or "IF"}: the IF leak is '
                              'fixed at 1; alpha cannot be learnable')
        super().__init__(alpha=1.0, **kwargs)


@MODELS.register_module()
class PLIF(LIF):
    """LIF with a learnable leak ``alpha = sigmoid(w)``, ``w`` from ``tau``.

    Args:
        tau (float): initial membrane time constant, ``> 1``;
            ``alpha = 1 - 1/tau`` at the start. Default 2.
        **kwargs: every :class:`LIF` argument except ``alpha``; the
            ``param_shape`` also sets the shape of ``w`` (one time constant
            per layer by default, as in the paper).
    """

    def __init__(self, tau=2.0, **kwargs):
        label = kwargs.get('name') or 'PLIF'
        if 'alpha' in kwargs:
            raise ConfigError(f'{label}: PLIF learns alpha = sigmoid(w); give '
                              'its initial time constant tau instead')
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or \
                not tau > 1 or not math.isfinite(tau):
            raise ConfigError(f'{label}: tau must be a finite number > 1, '
                              f'got {tau!r}')
        super().__init__(alpha=1.0 - 1.0 / float(tau), **kwargs)

    def param_names(self):
        return ('beta', 'theta', 'v0')

    def _init_leak(self, alpha):
        logit = math.log(alpha / (1.0 - alpha))
        self.w = nn.Parameter(torch.full(self.param_tensor_shape(), logit))

    def leak_factor(self):
        return torch.sigmoid(self.w)

    def extra_repr(self):
        return 'alpha=sigmoid(w), ' + super().extra_repr()
