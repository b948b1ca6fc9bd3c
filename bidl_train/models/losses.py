"""Classification losses on time-aggregated or per-step logits."""
import torch.nn.functional as F
from torch import nn

from bidl_train.registry import MODELS


@MODELS.register_module()
class CrossEntropyLoss(nn.Module):
    """Cross-entropy with optional label smoothing.

    Args:
        label_smoothing (float): as in ``torch.nn.functional.cross_entropy``.
        loss_weight (float): multiplies the loss.
    """

    def __init__(self, label_smoothing=0.0, loss_weight=1.0):
        super().__init__()
        self.label_smoothing = label_smoothing
        self.loss_weight = loss_weight

    def forward(self, logits, target):
        return self.loss_weight * F.cross_entropy(
            logits, target, label_smoothing=self.label_smoothing)


@MODELS.register_module()
class BCEWithLogitsLoss(nn.Module):
    """Binary cross-entropy for two-class outputs given as one logit.

    ``logits`` of shape ``[B, 1]`` or ``[B]``; ``target`` 0/1 labels.
    """

    def __init__(self, loss_weight=1.0):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, logits, target):
        return self.loss_weight * F.binary_cross_entropy_with_logits(
            logits.reshape(-1), target.float().reshape(-1))
