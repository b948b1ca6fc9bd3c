"""Classification head: a per-step linear readout, then aggregation over time.

BIDL's classifiers end with a plain (non-spiking) linear layer applied at every
time step; the logits are then averaged over time. The same readout supports
the last step only, the sum, and the TET loss (Deng et al., 2022), which
applies the loss to every step's logits and averages, while prediction still
uses the aggregated logits.
"""
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.layers.aggregation import fresh_aggregate, running_aggregate
from bidl_train.registry import MODELS

AGGREGATIONS = ('mean', 'sum', 'last')


@MODELS.register_module()
class SpikingClsHead(nn.Module):
    """Linear readout per time step + temporal aggregation + loss.

    Args:
        in_features (int): features per step after flattening.
        num_classes (int): number of classes.
        aggregation (str): 'mean' (BIDL default), 'sum' or 'last'.
        loss (dict): loss config, default cross-entropy.
        per_step_loss (bool): TET-style loss on every step's logits.
        dropout (float): dropout before the readout.
    """

    def __init__(self,
                 in_features,
                 num_classes,
                 aggregation='mean',
                 loss=dict(type='CrossEntropyLoss'),
                 per_step_loss=False,
                 dropout=0.0):
        super().__init__()
        if aggregation not in AGGREGATIONS:
            raise ConfigError(
                f'SpikingClsHead: aggregation must be one of {AGGREGATIONS}, '
                f'got {aggregation!r}')
        if num_classes < 1:
            raise ConfigError(
                f'SpikingClsHead: num_classes must be >= 1, got {num_classes}')
        self.aggregation = aggregation
        self.per_step_loss = per_step_loss
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(in_features, num_classes)
        self.loss_module = MODELS.build(loss)

    def step_logits(self, feats):
        """``[T, B, ...] -> [T, B, num_classes]``: readout at every step."""
        T, B = feats.shape[:2]
        flat = self.dropout(feats.reshape(T * B, -1))
        return self.fc(flat).reshape(T, B, -1)

    def aggregate(self, logits):
        """``[T, B, C] -> [B, C]``."""
        if self.aggregation == 'mean':
            return logits.mean(0)
        if self.aggregation == 'sum':
            return logits.sum(0)
        return logits[-1]

    def forward(self, feats):
        """Aggregated logits ``[B, num_classes]``."""
        return self.aggregate(self.step_logits(feats))

    def loss(self, feats, labels):
        logits = self.step_logits(feats)
        if self.per_step_loss:
            T = logits.shape[0]
            loss = sum(self.loss_module(logits[t], labels)
                       for t in range(T)) / T
        else:
            loss = self.loss_module(self.aggregate(logits), labels)
        return dict(loss=loss)

    # -- single-step form ---------------------------------------------
    def step(self, x_t, state=None):
        """Logits aggregated over the steps seen so far.

        ``state`` holds the running sum of logits and the step count, so after
        T steps the output equals :meth:`forward` on the whole sequence.
        """
        logits = self.fc(self.dropout(x_t.reshape(x_t.shape[0], -1)))
        return running_aggregate(self.aggregation, logits, state)

    def init_state(self, x_t):
        """No steps seen: zero logit sum and count (see
        :func:`~bidl_train.layers.aggregation.running_aggregate`)."""
        return fresh_aggregate(
            x_t.new_zeros(x_t.shape[0], self.fc.out_features))
