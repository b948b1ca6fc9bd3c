"""Files that ``bidl-test`` writes next to its JSON metrics.

From the metric dict of a test run (``Accuracy`` gives ``per_class_accuracy``
and ``confusion_matrix``; ``FiringRate`` gives ``firing_rate/<layer>``):

* ``per_class_accuracy.csv`` / ``.png``: class, name, samples, correct,
  accuracy (%; empty for classes without samples);
* ``confusion_matrix.csv`` / ``.png``: rows true classes, columns predicted;
* ``firing_rates.csv`` / ``.png``: layer and mean firing rate.
"""
import csv
import math
import os
import os.path as osp

import numpy as np

from .figures import (confusion_figure, firing_rates_figure,
                      per_class_figure, save_png)

__all__ = ['layer_rates', 'write_test_report']

RATE_PREFIX = 'firing_rate/'


def layer_rates(metrics):
    """``{layer: rate}`` from ``firing_rate/<layer>`` entries (not 'mean')."""
    return {
        key[len(RATE_PREFIX):]: float(value)
        for key, value in metrics.items()
        if key.startswith(RATE_PREFIX) and key != RATE_PREFIX + 'mean'
        and isinstance(value, (int, float))
    }


def _name(index, class_names):
    if class_names and index < len(class_names):
        return str(class_names[index])
    return str(index)


def write_test_report(metrics, out_dir, class_names=None):
    """Write the report files for what ``metrics`` holds; return their paths.

    Missing entries (no ``Accuracy`` or no ``FiringRate`` metric) simply
    produce no file for them.
    """
    os.makedirs(out_dir, exist_ok=True)
    written = []
    confusion = metrics.get('confusion_matrix')
    if confusion is not None:
        confusion = np.asarray(confusion, dtype=np.int64)
        written += _write_confusion(confusion, out_dir, class_names)
        samples = metrics.get('per_class_samples')
        correct = metrics.get('per_class_correct')
        if samples is None or correct is None:  # an older metric dict
            samples, correct = confusion.sum(1), np.diag(confusion)
        written += _write_per_class(samples, correct, out_dir, class_names)
    rates = layer_rates(metrics)
    if rates:
        path = osp.join(out_dir, 'firing_rates.csv')
        with open(path, 'w', newline='') as f:
            writer = csv.writer(f)
            writer.writerow(['layer', 'firing_rate'])
            for name, rate in rates.items():
                writer.writerow([name, f'{rate:.6f}'])
        written.append(path)
        written.append(save_png(firing_rates_figure(rates),
                                osp.join(out_dir, 'firing_rates.png')))
    return written


def _write_confusion(confusion, out_dir, class_names):
    n = confusion.shape[0]
    names = [_name(i, class_names) for i in range(n)]
    path = osp.join(out_dir, 'confusion_matrix.csv')
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['true \\ predicted'] + names)
        for name, row in zip(names, confusion):
            writer.writerow([name] + [int(v) for v in row])
    png = save_png(confusion_figure(confusion, class_names),
                   osp.join(out_dir, 'confusion_matrix.png'))
    return [path, png]


def _write_per_class(samples, correct, out_dir, class_names):
    """Per-class counts from the metric: a sample without a decided
    prediction (NaN or tied scores) is in ``samples`` but in no row of the
    confusion matrix."""
    samples = np.asarray(samples, dtype=np.int64)
    correct = np.asarray(correct, dtype=np.int64)
    accuracy = [100.0 * c / s if s else math.nan
                for c, s in zip(correct, samples)]
    path = osp.join(out_dir, 'per_class_accuracy.csv')
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['class', 'name', 'samples', 'correct',
                         'accuracy'])
        for i, acc in enumerate(accuracy):
            writer.writerow([
                i, _name(i, class_names), int(samples[i]), int(correct[i]),
                '' if math.isnan(acc) else f'{acc:.4f}'
            ])
    png = save_png(per_class_figure(accuracy, class_names),
                   osp.join(out_dir, 'per_class_accuracy.png'))
    return [path, png]
