"""Area under the ROC curve, as the MedMNIST benchmark reports it.

MedMNIST reports ACC and AUC side by side. Its ``medmnist.evaluator.getAUC``
computes, from the class scores (softmax probabilities here):

* two classes: the ROC AUC of the score of class 1 against "label is 1";
* more classes: the mean over classes of the one-vs-rest ROC AUC
  (class ``c``'s score against "label is c").

The AUC of one class is the Mann-Whitney statistic: the fraction of
(positive, negative) sample pairs in which the positive sample scores
higher, a tie counting one half. That is exactly what
``sklearn.metrics.roc_auc_score`` returns, computed here from average ranks
so that no sklearn is needed.

Two rules for what that definition leaves open:

* a class with no sample in the evaluated set (or with every sample) has
  no one-vs-rest AUC: it is skipped, the mean runs over the other classes,
  ``auc/classes_skipped`` counts the skipped ones (also logged as a warning
  naming them) and ``auc_per_class`` holds NaN for them;
* a NaN score carries no order: every pair it is part of counts as a tie
  (one half), so a diverged model gets the chance level 0.5, not a better
  AUC by leaving its bad samples out.
"""
import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from bidl_train.errors import ConfigError
from bidl_train.registry import METRICS
from .classification import scored_samples, stack_scored

__all__ = ['AUC', 'binary_auc', 'one_vs_rest_auc']


def _average_ranks(values):
    """1-based ranks of ``values``; tied values share their mean rank."""
    _, inverse, counts = np.unique(values, return_inverse=True,
                                   return_counts=True)
    last = np.cumsum(counts)  # rank of the last value of each tie group
    return (last - (counts - 1) / 2.0)[inverse.ravel()]


def binary_auc(is_positive, scores):
    """ROC AUC of ``scores`` for the boolean targets ``is_positive``.

    NaN when there is no positive or no negative sample (undefined).
    """
    pos = np.asarray(is_positive, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float('nan')
    ordered = ~np.isnan(scores)
    ranks = _average_ranks(scores[ordered])
    pos_ordered = pos[ordered]
    k_pos, k_neg = int(pos_ordered.sum()), int((~pos_ordered).sum())
    # Mann-Whitney U of the positives among the samples with a score
    wins = ranks[pos_ordered].sum() - k_pos * (k_pos + 1) / 2.0
    # pairs with a NaN score are ties: one half each
    wins += 0.5 * (n_pos * n_neg - k_pos * k_neg)
    return float(wins / (n_pos * n_neg))


def one_vs_rest_auc(scores, labels):
    """Per-class one-vs-rest ROC AUC: ``float array [classes]`` (NaN for a
    class with no sample, or with every sample, in ``labels``)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    return np.array([binary_auc(labels == c, scores[:, c])
                     for c in range(scores.shape[1])])


def _warn(message):
    print_log(message, logger='current', level=30)


@METRICS.register_module()
class AUC(BaseMetric):
    """ROC AUC from the class scores, as MedMNIST computes it.

    Returns ``auc`` (a fraction in [0, 1], as MedMNIST reports it),
    ``auc/classes_skipped`` (classes left out of the mean, see the module
    doc) and, as a non-scalar entry, ``auc_per_class`` (one-vs-rest AUC per
    class, NaN for a skipped class). With two classes ``auc`` is the AUC of
    class 1's score (equal to the one-vs-rest mean for probabilities).
    """
    default_prefix = ''

    def process(self, data_batch, data_samples):
        self.results.extend(scored_samples(data_samples, 'AUC'))

    def compute_metrics(self, results):
        scores, labels = stack_scored(results)
        classes = scores.shape[1]
        outside = labels[(labels < 0) | (labels >= classes)]
        if outside.size:
            raise ConfigError(
                f'AUC: the model scores {classes} classes but the data holds '
                f'label {outside[0]}; set model.head.num_classes to the '
                'number of classes of the dataset')
        per_class = one_vs_rest_auc(scores, labels)
        skipped = [c for c in range(classes) if np.isnan(per_class[c])]
        if classes == 2:
            auc = per_class[1]  # MedMNIST's binary rule: class 1's score
        elif len(skipped) < classes:
            auc = float(np.nanmean(per_class))
        else:
            auc = float('nan')
        if skipped:
            self._warn_skipped(skipped, classes, len(labels))
        return {
            'auc': float(auc),
            'auc/classes_skipped': len(skipped),
            'auc_per_class': [float(v) for v in per_class],
        }

    def _warn_skipped(self, skipped, classes, samples):
        names = (self.dataset_meta or {}).get('classes') or ()
        shown = ', '.join(
            f'{c} ({names[c]})' if c < len(names) else str(c)
            for c in skipped)
        if classes == 2:
            consequence = 'AUC is undefined (NaN) with only one class present'
        else:
            consequence = (f'AUC is the mean over the other '
                           f'{classes - len(skipped)} of {classes} classes')
        which = f'class {shown} has' if len(skipped) == 1 else \
            f'classes {shown} have'
        _warn(f'AUC: {which} no sample, or every sample, among the '
              f'{samples} evaluated; one-vs-rest AUC undefined and skipped: '
              f'{consequence}')
