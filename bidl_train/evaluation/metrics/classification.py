"""Classification metrics computed from the classifier's predictions.

``SpikingClassifier.predict`` returns one dict per sample with ``pred_score``
(class probabilities), ``gt_label`` and ``firing_rates``. The metrics collect
those per sample (mmengine gathers them across ranks, each sample once) and
reduce them at the end of the epoch.
"""
import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from bidl_train.errors import ConfigError
from bidl_train.registry import METRICS


@METRICS.register_module()
class Accuracy(BaseMetric):
    """Top-k accuracy, per-class accuracy and the confusion matrix.

    Returns ``accuracy/top{k}`` (percent) for each k, and as non-scalar
    entries ``per_class_accuracy`` (percent per class, NaN for classes with
    no sample) and ``confusion_matrix`` (rows: true class, columns: predicted).

    A sample is a top-k hit when its scores are all finite and fewer than
    k other classes score at least as high as the true class: a tie with
    the true class at the boundary is a miss (a model scoring every class
    alike is at 0 %, not 100 %), and a sample with any NaN/Inf score is a
    miss for every k. Only samples with finite scores and a unique maximum
    have a prediction: the others are counted in ``nonfinite_scores`` and
    ``tied_top_scores`` and left out of the confusion matrix, so its rows
    may sum to fewer samples than ``per_class_accuracy`` counted.

    Args:
        topk (int | tuple[int]): the k values. k larger than the number of
            classes is reported as 100 % of the samples with finite scores.
        num_classes (int, optional): defaults to the larger of the number of
            the dataset's ``classes`` and the score size.
    """
    default_prefix = ''

    def __init__(self, topk=(1, 5), num_classes=None, collect_device='cpu',
                 prefix=None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = (topk, ) if isinstance(topk, int) else tuple(topk)
        if not self.topk or min(self.topk) < 1:
            raise ConfigError(f'Accuracy: topk must be >= 1, got {topk}')
        self.num_classes = num_classes

    def process(self, data_batch, data_samples):
        self.results.extend(scored_samples(data_samples, 'Accuracy'))

    def compute_metrics(self, results):
        scores, labels = stack_scored(results)
        score_size = scores.shape[1]
        if labels.max() >= score_size:
            raise ConfigError(
                f'Accuracy: the model scores {score_size} classes but the '
                f'data holds label {labels.max()}; set model.head.num_classes '
                'to the number of classes of the dataset')
        num_classes = self._num_classes(score_size)
        if labels.max() >= num_classes or labels.min() < 0:
            raise ConfigError(
                f'Accuracy: label {labels.max()} outside 0..{num_classes - 1}')
        finite = np.isfinite(scores).all(1)
        metrics = {}
        at_least = _classes_at_least_true(scores, labels, finite)
        for k in self.topk:
            metrics[f'accuracy/top{k}'] = float((at_least <= k).mean() * 100)
        # a prediction exists only for finite scores with a unique maximum;
        # argmax would pick the first NaN or the first of tied classes
        top = np.where(finite, scores.max(1), np.nan)
        decided = finite & ((scores == top[:, None]).sum(1) == 1)
        preds = scores.argmax(1)
        confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
        np.add.at(confusion, (labels[decided], preds[decided]), 1)
        samples = np.bincount(labels, minlength=num_classes)
        hits = np.bincount(labels[at_least <= 1], minlength=num_classes)
        metrics['per_class_accuracy'] = [
            float(100.0 * h / n) if n else float('nan')
            for h, n in zip(hits, samples)
        ]
        # the confusion matrix leaves out undecided samples (NaN or tied
        # scores), so per-class counts are reported on their own
        metrics['per_class_samples'] = samples.tolist()
        metrics['per_class_correct'] = hits.tolist()
        metrics['confusion_matrix'] = confusion.tolist()
        metrics['nonfinite_scores'] = int((~finite).sum())
        metrics['tied_top_scores'] = int((finite & ~decided).sum())
        return metrics

    def _num_classes(self, score_size):
        if self.num_classes is not None:
            return self.num_classes
        # a head wider than the dataset's class list (a task config on a
        # subset of its classes) predicts classes the data never names:
        # the confusion matrix covers every score
        classes = (self.dataset_meta or {}).get('classes') or ()
        return max(len(classes), score_size)


@METRICS.register_module()
class FiringRate(BaseMetric):
    """Mean firing rate of every spiking layer over the evaluated samples.

    Returns ``firing_rate/<layer>`` per neuron layer and ``firing_rate/mean``
    (the unweighted mean over layers). Rates are spikes per neuron per step.
    """
    default_prefix = ''

    def process(self, data_batch, data_samples):
        for sample in data_samples:
            self.results.append(dict(sample.get('firing_rates', {})))

    def compute_metrics(self, results):
        layers = {}
        for rates in results:
            for name, rate in rates.items():
                layers.setdefault(name, []).append(rate)
        metrics = {
            f'firing_rate/{name}': float(np.mean(values))
            for name, values in layers.items()
        }
        if layers:
            metrics['firing_rate/mean'] = float(
                np.mean([np.mean(v) for v in layers.values()]))
        return metrics


def scored_samples(data_samples, metric):
    """``[{score, label}]`` of a batch's data samples, for a metric that
    needs each sample's scores and its ground-truth label."""
    results = []
    for sample in data_samples:
        if 'gt_label' not in sample:
            raise ConfigError(
                f'{metric} needs ground-truth labels; the dataset of this '
                'split yields samples without "label"')
        results.append(
            dict(score=np.asarray(sample['pred_score'], dtype=np.float32),
                 label=int(sample['gt_label'])))
    return results


def stack_scored(results):
    """``(scores [N, C], labels [N])`` from :func:`scored_samples`."""
    return (np.stack([r['score'] for r in results]),
            np.array([r['label'] for r in results]))


def _classes_at_least_true(scores, labels, finite):
    """Per sample: how many classes score at least as high as the true one.

    The true class counts itself, so a sample is a top-k hit exactly when
    this is <= k: the true class is strictly inside the top k, and a tie at
    the boundary (the true class level with the k-th) is a miss. Samples
    with any NaN/Inf score get the largest integer: a hit for no k, not even
    a k beyond the number of classes.
    """
    true_scores = scores[np.arange(len(labels)), labels]
    at_least = (scores >= true_scores[:, None]).sum(1).astype(np.int64)
    at_least[~finite] = np.iinfo(np.int64).max
    return at_least


def to_serialisable(metrics):
    """Metric dict -> JSON-friendly values (tensors/arrays to lists)."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, torch.Tensor):
            value = value.tolist()
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        elif isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out
