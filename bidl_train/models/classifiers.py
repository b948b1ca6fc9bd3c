"""The spiking classifier: data preprocessor -> backbone -> head.

It follows mmengine's ``BaseModel`` protocol: ``forward(inputs, data_samples,
mode)`` with ``mode`` 'loss' (training), 'predict' (validation/test) or
'tensor' (raw logits, for export and analysis). Inputs arrive time first,
``[T, B, ...]``; every forward starts the neurons from a fresh state.
"""
import torch
import torch.nn.functional as F
from mmengine.model import BaseModel

from bidl_train.errors import ConfigError
from bidl_train.learning.teacher import labels_of, teaching
from bidl_train.registry import MODELS
from bidl_train.utils.state import check_state_entries

from .monitor import record_firing_rates


@MODELS.register_module()
class SpikingClassifier(BaseModel):
    """Backbone of spiking layers + classification head.

    Args:
        backbone (dict): backbone config; its multi-step output
            ``[T, B, ...]`` feeds the head.
        head (dict): head config (e.g. ``SpikingClsHead``).
        data_preprocessor (dict, optional): defaults to
            ``SpikingDataPreprocessor``.
        record_firing (bool): attach per-layer firing rates to predictions.
    """

    def __init__(self,
                 backbone,
                 head,
                 data_preprocessor=None,
                 record_firing=True,
                 init_cfg=None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='SpikingDataPreprocessor')
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.head = MODELS.build(head)
        self.record_firing = record_firing

    def extract_feat(self, inputs):
        return self.backbone(inputs)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        if mode == 'tensor':
            return self.head(self.extract_feat(inputs))
        if mode == 'loss':
            # the labels teach the plastic layers whose rule needs them
            with teaching(labels_of(data_samples)):
                feats = self.extract_feat(inputs)
            return self.head.loss(feats, _targets(data_samples))
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise ConfigError(
            f'SpikingClassifier: unknown mode {mode!r}; use "loss", '
            '"predict" or "tensor"')

    def predict(self, inputs, data_samples=None):
        """One dict per sample: scores, predicted and true label, rates."""
        if self.record_firing:
            with record_firing_rates(self) as rates:
                logits = self.head(self.extract_feat(inputs))
        else:
            rates, logits = {}, self.head(self.extract_feat(inputs))
        scores = _class_scores(logits.float())
        labels = None
        if data_samples is not None and data_samples.get('label') is not None:
            labels = _labels(data_samples)
        results = []
        for i in range(scores.shape[0]):
            result = dict(
                pred_score=scores[i].cpu(),
                pred_label=_predicted_label(scores[i]),
                firing_rates={
                    name: float(rate[i])
                    for name, rate in rates.items()
                })
            if labels is not None:
                result['gt_label'] = int(labels[i])
            results.append(result)
        return results

    def step(self, x_t, state=None):
        """Single-step form: ``(logits_t, state)`` with explicit state.

        ``logits_t`` aggregates the steps seen so far, so after T steps it
        equals ``forward(x_seq, mode='tensor')``. ``state`` is
        ``{'backbone': ..., 'head': ...}`` (the protocol of
        :mod:`bidl_train.utils.state`; its flattened names, such as
        ``backbone.0.v`` and ``head.sum``, are the exported graph's states).
        """
        check_state_entries(type(self).__name__, state, ('backbone', 'head'),
                            'part name')
        state = state or {}
        feats, backbone_state = self.backbone.step(x_t, state.get('backbone'))
        logits, head_state = self.head.step(feats, state.get('head'))
        return logits, dict(backbone=backbone_state, head=head_state)


#: ``pred_label`` of a sample whose scores decide nothing (NaN/Inf or a tie
#: at the top): argmax would name an arbitrary class
NO_PREDICTION = -1


def _predicted_label(scores):
    """The class with the unique highest finite score, else ``NO_PREDICTION``."""
    if not bool(torch.isfinite(scores).all()):
        return NO_PREDICTION
    top = scores.max()
    if int((scores == top).sum()) > 1:
        return NO_PREDICTION
    return int(scores.argmax())


def _class_scores(logits):
    """Class probabilities; one logit means a binary (sigmoid) classifier."""
    if logits.shape[1] == 1:
        positive = torch.sigmoid(logits)
        return torch.cat([1 - positive, positive], dim=1)
    return F.softmax(logits, dim=1)


def _targets(data_samples):
    """Training targets: mixed-sample soft labels when the data has them.

    Mixing augmentations (EventMix, CutMix) give each sample a class
    distribution ``soft_label [B, C]``; cross-entropy takes it directly.
    """
    if data_samples is not None and data_samples.get('soft_label') is not None:
        return data_samples['soft_label'].float()
    return _labels(data_samples)


def _labels(data_samples):
    if data_samples is None or data_samples.get('label') is None:
        raise ConfigError(
            'training needs labels: the dataset samples must carry a "label" '
            'entry')
    labels = data_samples['label']
    if not isinstance(labels, torch.Tensor):
        labels = torch.as_tensor(labels)
    return labels.long()
