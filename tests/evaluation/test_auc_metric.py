"""The AUC metric against hand counts, brute-force pair counting and (when
installed) sklearn; its registration and its use in the MedMNIST config."""
import itertools
import math
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config

from bidl_train.errors import ConfigError
from bidl_train.evaluation.metrics import auc as auc_module
from bidl_train.evaluation.metrics.auc import AUC, binary_auc, one_vs_rest_auc
from bidl_train.registry import METRICS

from helpers.paths import REPO


def _samples(scores, labels):
    return [dict(pred_score=torch.tensor(s), gt_label=l)
            for s, l in zip(scores, labels)]


def _compute(scores, labels, classes=None):
    metric = AUC()
    if classes:
        metric.dataset_meta = dict(classes=classes)
    metric.process({}, _samples(scores, labels))
    return metric.compute_metrics(metric.results)


def pair_count_auc(is_positive, scores):
    """The definition itself: share of (positive, negative) pairs ordered
    right, ties one half."""
    pos = [s for p, s in zip(is_positive, scores) if p]
    neg = [s for p, s in zip(is_positive, scores) if not p]
    total = 0.0
    for a, b in itertools.product(pos, neg):
        total += 1.0 if a > b else 0.5 if a == b else 0.0
    return total / (len(pos) * len(neg))


def test_binary_auc_by_hand():
    # pairs (positive, negative): (.35,.1) right, (.35,.4) wrong,
    # (.8,.1) right, (.8,.4) right -> 3 of 4
    assert binary_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    # a tie between a positive and a negative counts one half: 3.5 of 4
    assert binary_auc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]) == 0.875
    assert binary_auc([1, 1, 0], [0.9, 0.8, 0.1]) == 1.0
    assert binary_auc([1, 1, 0], [0.1, 0.2, 0.3]) == 0.0


def test_binary_auc_matches_pair_counting_with_many_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(2, 40))
        targets = rng.integers(0, 2, n).astype(bool)
        targets[0], targets[1] = True, False
        scores = rng.integers(0, 5, n) / 4.0  # few levels: many ties
        assert binary_auc(targets, scores) == pytest.approx(
            pair_count_auc(targets, scores))


def test_undefined_and_nan_scores():
    assert math.isnan(binary_auc([1, 1], [0.2, 0.3]))  # no negative
    assert math.isnan(binary_auc([0, 0], [0.2, 0.3]))  # no positive
    # the NaN-scored positive ties with both negatives: (0.5 + 0.5 + 1 + 1)/4
    assert binary_auc([1, 1, 0, 0],
                      [float('nan'), 0.9, 0.1, 0.2]) == pytest.approx(0.75)


def test_multiclass_metric_by_hand():
    scores = [[0.6, 0.3, 0.1],
              [0.2, 0.5, 0.3],
              [0.3, 0.3, 0.4],
              [0.5, 0.1, 0.4]]
    labels = [0, 1, 2, 1]
    # class 0: positive .6 vs negatives .2 .3 .5 -> 3/3 = 1
    # class 1: positives .5 .1 vs negatives .3 .3 -> (1 + 1 + 0 + 0)/4 = .5
    # class 2: positive .4 vs negatives .1 .3 .4 -> (1 + 1 + .5)/3 = 5/6
    out = _compute(scores, labels)
    assert out['auc_per_class'] == pytest.approx([1.0, 0.5, 5 / 6])
    assert out['auc'] == pytest.approx((1.0 + 0.5 + 5 / 6) / 3)
    assert out['auc/classes_skipped'] == 0


def test_binary_metric_uses_class_one_score():
    # MedMNIST's binary rule; with probabilities it equals class 0's AUC
    scores = [[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]]
    out = _compute(scores, [0, 0, 1, 1])
    assert out['auc'] == 0.75
    assert out['auc_per_class'] == pytest.approx([0.75, 0.75])


def test_absent_class_is_skipped_and_named(monkeypatch):
    warnings = []
    monkeypatch.setattr(auc_module, '_warn', warnings.append)
    scores = [[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1]]
    out = _compute(scores, [0, 1, 0], classes=['benign', 'malign', 'other'])
    assert math.isnan(out['auc_per_class'][2])
    assert out['auc/classes_skipped'] == 1
    # class 0: .7 .6 vs .2 -> 1; class 1: .7 vs .2 .3 -> 1
    assert out['auc'] == 1.0
    assert len(warnings) == 1
    assert 'class 2 (other)' in warnings[0]
    assert '2 of 3 classes' in warnings[0]


def test_binary_with_one_class_present_is_nan(monkeypatch):
    warnings = []
    monkeypatch.setattr(auc_module, '_warn', warnings.append)
    out = _compute([[0.7, 0.3], [0.4, 0.6]], [1, 1])
    assert math.isnan(out['auc'])
    assert out['auc/classes_skipped'] == 2
    assert 'undefined' in warnings[0]


def test_label_beyond_the_scores_is_refused():
    with pytest.raises(ConfigError, match='num_classes'):
        _compute([[0.5, 0.5], [0.4, 0.6]], [0, 3])


def test_registered_and_used_by_the_medmnist_config():
    metric = METRICS.build(dict(type='AUC'))
    assert isinstance(metric, AUC)
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'medmnist3d.py'))
    for key in ('val_evaluator', 'test_evaluator'):
        types = [m['type'] for m in cfg[key]]
        assert 'AUC' in types and 'Accuracy' in types, key


def test_agrees_with_sklearn_when_installed():
    metrics = pytest.importorskip('sklearn.metrics')
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 200)
    labels[:4] = [0, 1, 2, 3]
    logits = rng.normal(size=(200, 4)) + np.eye(4)[labels]
    scores = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    scores = np.round(scores, 2)  # ties
    expected = [metrics.roc_auc_score(labels == c, scores[:, c])
                for c in range(4)]
    assert one_vs_rest_auc(scores, labels) == pytest.approx(expected)
    single = scores.astype(np.float32)  # what the metric collects
    out = _compute(single.tolist(), labels.tolist())
    assert out['auc'] == pytest.approx(np.mean([
        metrics.roc_auc_score(labels == c, single[:, c]) for c in range(4)]))
