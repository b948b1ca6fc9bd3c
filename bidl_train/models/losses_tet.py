"""The TET loss (Deng et al., "Temporal Efficient Training of Spiking Neural
Network via Gradient Re-weighting", ICLR 2022), one time step at a time.

TET scores every step's logits ``O_t`` instead of their time average:

    L = 1/T sum_t [ (1 - lamb) CE(O_t, y) + lamb MSE(O_t, phi) ]

The second term pulls every logit towards the constant ``phi`` (the paper's
"means", 1.0 in its code; ``lamb`` 1e-3 there), which keeps the per-step
outputs from drifting apart. ``SpikingClsHead(per_step_loss=True)`` already
averages a loss over the steps, so this module is the bracket for ONE step;
with ``lamb=0`` it is the plain per-step cross-entropy.

Use it as ``head=dict(per_step_loss=True, loss=dict(type='TETLoss', ...))``.
"""
import torch.nn.functional as F
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.registry import MODELS


@MODELS.register_module()
class TETLoss(nn.Module):
    """``(1 - lamb) CE(logits, y) + lamb MSE(logits, phi)`` for one step.

    Args:
        lamb (float): weight of the MSE regulariser, in ``[0, 1]``.
        phi (float): constant the logits are pulled towards.
        label_smoothing (float): as in ``torch.nn.functional.cross_entropy``.
        loss_weight (float): multiplies the loss.
    """

    def __init__(self, lamb=1e-3, phi=1.0, label_smoothing=0.0,
                 loss_weight=1.0):
        super().__init__()
        if isinstance(lamb, bool) or not isinstance(lamb, (int, float)) \
                or not 0.0 <= lamb <= 1.0:
            raise ConfigError(
                f'TETLoss: lamb must be a number in [0, 1], got {lamb!r}; '
                'the paper uses 1e-3')
        self.lamb = float(lamb)
        self.phi = float(phi)
        self.label_smoothing = label_smoothing
        self.loss_weight = loss_weight

    def forward(self, logits, target):
        ce = F.cross_entropy(logits, target,
                             label_smoothing=self.label_smoothing)
        mse = (logits - self.phi).square().mean()
        return self.loss_weight * ((1.0 - self.lamb) * ce + self.lamb * mse)
