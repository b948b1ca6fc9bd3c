"""Accuracy / confusion matrix / firing-rate metrics against hand counts."""
import math

import numpy as np
import pytest
import torch

from bidl_train.errors import ConfigError
from bidl_train.evaluation import Accuracy, FiringRate


def _samples(scores, labels, rates=None):
    return [
        dict(pred_score=torch.tensor(s), gt_label=l,
             firing_rates=(rates[i] if rates else {}))
        for i, (s, l) in enumerate(zip(scores, labels))
    ]


def test_topk_per_class_and_confusion_by_hand():
    scores = [
        [0.7, 0.2, 0.1, 0.0],  # true 0, predicted 0
        [0.1, 0.5, 0.3, 0.1],  # true 2, predicted 1, true class 2nd
        [0.2, 0.3, 0.4, 0.1],  # true 0, predicted 2, true class 3rd
        [0.1, 0.1, 0.1, 0.7],  # true 3, predicted 3
    ]
    labels = [0, 2, 0, 3]
    metric = Accuracy(topk=(1, 2, 3), num_classes=4)
    metric.process({}, _samples(scores, labels))
    out = metric.compute_metrics(metric.results)
    assert out['accuracy/top1'] == pytest.approx(50.0)
    assert out['accuracy/top2'] == pytest.approx(75.0)
    assert out['accuracy/top3'] == pytest.approx(100.0)
    assert out['confusion_matrix'] == [[1, 0, 1, 0], [0, 0, 0, 0],
                                       [0, 1, 0, 0], [0, 0, 0, 1]]
    per_class = out['per_class_accuracy']
    assert per_class[0] == pytest.approx(50.0)
    assert math.isnan(per_class[1])  # no sample of class 1
    assert per_class[2] == pytest.approx(0.0)
    assert per_class[3] == pytest.approx(100.0)


def test_num_classes_from_dataset_meta():
    metric = Accuracy(topk=1)
    metric.dataset_meta = dict(classes=['a', 'b', 'c'])
    metric.process({}, _samples([[0.9, 0.1]], [0]))
    out = metric.compute_metrics(metric.results)
    assert np.array(out['confusion_matrix']).shape == (3, 3)


def test_label_outside_classes_is_refused():
    metric = Accuracy(topk=1, num_classes=2)
    metric.process({}, _samples([[0.5, 0.1, 0.1, 0.3]], [3]))
    with pytest.raises(ConfigError, match='outside'):
        metric.compute_metrics(metric.results)


def test_head_narrower_than_the_labels_names_the_config_key():
    metric = Accuracy(topk=1)
    metric.process({}, _samples([[0.9, 0.1]], [5]))
    with pytest.raises(ConfigError, match='model.head.num_classes'):
        metric.compute_metrics(metric.results)


def test_head_wider_than_the_dataset_classes():
    """A 4-class head on a dataset naming 2 classes (a task config run on
    a subset): predictions of classes 2-3 are counted, not a crash."""
    metric = Accuracy(topk=1)
    metric.dataset_meta = dict(classes=['a', 'b'])
    metric.process({}, _samples([[0.1, 0.2, 0.6, 0.1], [0.7, 0.1, 0.1, 0.1]],
                                [1, 0]))
    out = metric.compute_metrics(metric.results)
    assert out['accuracy/top1'] == pytest.approx(50.0)
    assert out['confusion_matrix'] == [[1, 0, 0, 0], [0, 0, 1, 0],
                                       [0, 0, 0, 0], [0, 0, 0, 0]]


def test_firing_rate_means_over_samples_then_layers():
    rates = [{'a': 0.1, 'b': 0.5}, {'a': 0.3, 'b': 0.7}]
    metric = FiringRate()
    metric.process({}, _samples([[1.0], [1.0]], [0, 0], rates))
    out = metric.compute_metrics(metric.results)
    assert out['firing_rate/a'] == pytest.approx(0.2)
    assert out['firing_rate/b'] == pytest.approx(0.6)
    assert out['firing_rate/mean'] == pytest.approx(0.4)
