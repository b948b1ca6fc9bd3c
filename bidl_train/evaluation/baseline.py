"""Non-spiking baselines on a config's own data (``tools/baseline.py``).

Does the spiking model earn its keep? Two obvious baselines answer it, both
fed exactly what the SNN sees (the config's datasets, loaders and its
model's data preprocessor, ``[T, B, ...]``):

* **logistic regression** on the representation: the flattened ``[T, ...]``
  tensor of each sample, or, for token ids (integer inputs), a bag-of-words
  count vector over the vocabulary. Features are standardised with the
  training split's mean and deviation; the L2 strength is chosen on a 20 %
  hold-out of the training split, then the model is refitted on all of it
  (full-batch L-BFGS, as scikit-learn's default solver). The training
  features come from one pass of the training loader, its augmentation
  included; the model is fitted to convergence, not for a number of epochs;
* a **ReLU ANN**: the config's own model with every spiking neuron replaced
  by a ReLU applied per step (:func:`relu_ann`), trained like the SNN.

The training loop of the ANN needs a Runner and lives in the tool; this
module holds the parts that need no engine.
"""
import json
import math
import os.path as osp

import torch
import torch.nn.functional as F
from torch import nn

from bidl_train.errors import ConfigError, DataError
from bidl_train.neurons.base import BaseNeuron

__all__ = [
    'StepReLU', 'relu_ann', 'Features', 'extract_features', 'loader_labels',
    'bag_of_words', 'fit_logistic_regression', 'sample_span',
    'evaluate_model', 'best_and_last_accuracy', 'format_table',
    'baseline_line', 'baseline_summary', 'find_baseline'
]

#: L2 strengths tried on the hold-out (on the mean loss, standardised data):
#: up to 10, because a bag of words on a few thousand snippets wants 0.3-1
#: (a grid ending at 0.1 always chose its edge there), with half decades
#: where text and event frames usually land
L2_GRID = (1e-4, 1e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 10.0)


class StepReLU(nn.Module):
    """``y_t = relu(x_t)`` at every step: a neuron without memory.

    Keeps the replaced neuron's membrane normalisation (``norm``, BIDL's
    ``norm_state`` BatchNorm) if it had one, applied per step before the
    ReLU, so the ANN keeps those parameters (conv -> BN -> ReLU). Has the
    neuron protocol's single-step form too, with an empty state.
    """

    def __init__(self, replaced='neuron', norm=None):
        super().__init__()
        self.replaced = replaced
        self.norm = norm

    def _act(self, x_t):
        return F.relu(x_t if self.norm is None else self.norm(x_t))

    def forward(self, x_seq):
        if self.norm is None:
            return F.relu(x_seq)
        return torch.stack([self._act(x_t) for x_t in x_seq.unbind(0)])

    def step(self, x_t, state=None):
        return self._act(x_t), {}

    def init_state(self, x_t):
        return {}

    def extra_repr(self):
        return f'replaces {self.replaced}'


def relu_ann(model):
    """Replace every :class:`BaseNeuron` in ``model`` by :class:`StepReLU`,
    in place. Returns ``[(dotted name, neuron class name), ...]``.

    A neuron module reached under two names (shared) gets one replacement.
    """
    replaced, swapped = [], {}
    for parent_name, parent in list(model.named_modules()):
        for child_name, child in list(parent._modules.items()):
            if not isinstance(child, BaseNeuron):
                continue
            if id(child) not in swapped:
                norm = getattr(child, 'norm', None)
                swapped[id(child)] = StepReLU(
                    type(child).__name__,
                    norm if isinstance(norm, nn.Module) else None)
                name = f'{parent_name}.{child_name}' if parent_name \
                    else child_name
                replaced.append((name, type(child).__name__))
            parent._modules[child_name] = swapped[id(child)]
    return replaced


class Features:
    """Per-sample representations of one split, batch first.

    ``values`` is ``[N, F]`` float32 (flattened representation) or ``[N, T]``
    int64 token ids (``kind == 'tokens'``); ``labels`` is ``[N]``.
    """

    def __init__(self, values, labels, kind, sample_shape):
        self.values, self.labels = values, labels
        self.kind, self.sample_shape = kind, tuple(sample_shape)

    def __len__(self):
        return len(self.labels)


def _batch_first(inputs, preprocessor, batch):
    """The preprocessed batch with samples on axis 0."""
    time_first = getattr(preprocessor, 'time_first', True) or getattr(
        preprocessor, 'encoder', None) is not None
    if time_first and inputs.dim() >= 2:
        inputs = inputs.transpose(0, 1)
    if inputs.shape[0] != batch:
        raise DataError(
            f'the preprocessed batch has shape {tuple(inputs.shape)}, which '
            f'does not hold the batch of {batch} samples on axis '
            f'{1 if time_first else 0}; is model.data_preprocessor.'
            'time_first right for this data?')
    return inputs


def extract_features(model, loader, limit=None, max_bytes=2 * 2**30):
    """One pass of ``loader`` through ``model.data_preprocessor``.

    ``limit`` stops after that many samples (the loader's order: a shuffled
    training loader gives a random subset). ``max_bytes`` bounds the memory
    the kept representation may take.
    """
    preprocessor = model.data_preprocessor
    values, labels, kind, shape, used = [], [], None, None, 0
    with torch.no_grad():
        for batch in loader:
            data = preprocessor(batch, False)
            target = data['data_samples'].get('label')
            if target is None:
                raise DataError('the dataset samples carry no "label"; a '
                                'baseline needs labelled data')
            target = torch.as_tensor(target).long().reshape(-1)
            x = _batch_first(data['inputs'], preprocessor, len(target))
            kind = 'float' if x.is_floating_point() else 'tokens'
            shape = x.shape[1:]
            x = x.reshape(len(target), -1)
            x = x.float() if kind == 'float' else x.long()
            used += x.numel() * x.element_size()
            if used > max_bytes:
                raise DataError(
                    f'the flattened representation ({x.shape[1]} values a '
                    f'sample) passes {max_bytes / 2**30:.1f} GiB after '
                    f'{sum(map(len, labels))} samples; give --lr-samples N '
                    'to fit the logistic regression on fewer training '
                    'samples, or raise --max-memory-gb')
            values.append(x.cpu())
            labels.append(target.cpu())
            if limit is not None and sum(map(len, labels)) >= limit:
                break
    if not labels:
        raise DataError('the data loader yielded no batch')
    values, labels = torch.cat(values), torch.cat(labels)
    if limit is not None:
        values, labels = values[:limit], labels[:limit]
    return Features(values, labels, kind, shape)


def loader_labels(loader):
    """``[N]`` labels of every sample ``loader`` yields."""
    labels = [torch.as_tensor(batch['label']).long().reshape(-1)
              for batch in loader if 'label' in batch]
    if not labels:
        raise DataError('the evaluation samples carry no "label"')
    return torch.cat(labels)


def bag_of_words(ids, vocab_size, pad_id=0):
    """Count vectors ``[N, vocab_size]`` of token ids ``[N, T]``; the pad
    token is not a word and is not counted."""
    if int(ids.min()) < 0 or int(ids.max()) >= vocab_size:
        raise DataError(f'token ids lie in [{int(ids.min())}, '
                        f'{int(ids.max())}], outside the vocabulary of '
                        f'{vocab_size} ids')
    counts = torch.zeros(ids.shape[0], vocab_size)
    counts.scatter_add_(1, ids, torch.ones(ids.shape, dtype=counts.dtype))
    if pad_id is not None and 0 <= pad_id < vocab_size:
        counts[:, pad_id] = 0
    return counts


class LogisticRegression:
    """A fitted multinomial logistic regression on standardised features."""

    def __init__(self, mean, std, weight, bias, l2):
        self.mean, self.std = mean, std
        self.weight, self.bias, self.l2 = weight, bias, l2

    def predict(self, x):
        with torch.no_grad():
            return ((x - self.mean) / self.std @ self.weight +
                    self.bias).argmax(1)


def _fit(x, y, num_classes, l2, max_iter):
    """Minimise mean cross-entropy + l2 / 2 * |W|^2 by full-batch L-BFGS."""
    weight = torch.zeros(x.shape[1], num_classes, requires_grad=True)
    bias = torch.zeros(num_classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1, max_iter=max_iter,
                                  history_size=20,
                                  line_search_fn='strong_wolfe')

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, y) + \
            0.5 * l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach()


def sample_span(x, rtol=1e-6):
    """``(z [N, r], to_weight)``: ``x [N, F]`` written in an orthonormal
    basis ``Q [F, r]`` of the span of its rows (``z = x Q``), and the map
    ``v [r, C] -> Q v [F, C]`` back to weights on the features.

    With more features than samples (a flattened event representation has
    tens of thousands) this is what makes the fit fast: the L2-regularised
    optimum lies in the span of the training rows (the representer
    theorem), and ``|Q v| = |v|``, so fitting ``v`` on ``z`` with the same
    L2 gives exactly the weights a fit on ``x`` gives, from an ``N x N``
    eigendecomposition of ``x x^T`` instead of ``N x F`` products at every
    step. Directions of eigenvalue below ``rtol`` times the largest carry
    only rounding error and are left out.
    """
    gram = (x @ x.T).double()
    values, vectors = torch.linalg.eigh(gram)
    keep = values > values.max().clamp_min(1e-30) * rtol
    values, vectors = values[keep], vectors[:, keep]
    z = (vectors * values.sqrt()).float()
    # Q = x^T U S^-1/2, so Q v = x^T (U S^-1/2 v): Q is never formed
    back = (vectors / values.sqrt()).float()

    def to_weight(v):
        return x.T @ (back @ v)

    return z, to_weight


def fit_logistic_regression(x, y, num_classes, l2_grid=L2_GRID, holdout=0.2,
                            max_iter=100, seed=0):
    """Fit on ``x [N, F]``, ``y [N]``; the L2 strength from ``l2_grid`` that
    scores best on a ``holdout`` share of the samples (ties: the stronger),
    then refitted on all of them."""
    x = x.float()
    mean = x.mean(0)
    # constant features (e.g. a pixel no event ever reaches) stay at zero
    std = x.std(0, unbiased=False).clamp_min(1e-6)
    xs = (x - mean) / std
    if xs.shape[1] > xs.shape[0]:
        # exact, see sample_span: the hold-out rows lie in the span too,
        # which does not change the optimum of a fit on the other rows
        z, to_weight = sample_span(xs)
    else:
        z, to_weight = xs, (lambda v: v)
    grid = sorted(l2_grid)
    n_hold = int(len(y) * holdout)
    if len(grid) > 1 and n_hold >= 2 and len(y) - n_hold >= 2:
        order = torch.randperm(len(y),
                               generator=torch.Generator().manual_seed(seed))
        hold, fit = order[:n_hold], order[n_hold:]
        scores = []
        for l2 in grid:
            weight, bias = _fit(z[fit], y[fit], num_classes, l2, max_iter)
            pred = (z[hold] @ weight + bias).argmax(1)
            scores.append((float((pred == y[hold]).float().mean()), l2))
        best = max(score for score, _ in scores)
        chosen = max(l2 for score, l2 in scores if score == best)
    else:
        chosen = grid[len(grid) // 2]
    weight, bias = _fit(z, y, num_classes, chosen, max_iter)
    return LogisticRegression(mean, std, to_weight(weight), bias, chosen)


def accuracy(pred, labels):
    """Top-1 accuracy in percent."""
    return 100.0 * int((pred == labels).sum()) / len(labels)


def evaluate_model(model, loader):
    """Top-1 accuracy (%) of ``model`` over ``loader`` via ``val_step``."""
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for batch in loader:
            for result in model.val_step(batch):
                if 'gt_label' not in result:
                    raise DataError('the evaluation samples carry no label')
                correct += int(result['pred_label'] == result['gt_label'])
                total += 1
    if total == 0:
        raise DataError('the evaluation data loader yielded no sample')
    return 100.0 * correct / total


def best_and_last_accuracy(work_dir, key='accuracy/top1'):
    """``(best, last)`` of ``key`` over the validations logged in a work
    dir (its ``*/vis_data/scalars.json``)."""
    from bidl_train.visualization.curves import read_curves
    curve = read_curves(work_dir).get(key)
    if curve is None or not len(curve):
        raise DataError(f'no {key!r} logged in the run (was validation '
                        'switched off?)', path=work_dir)
    values = list(curve.y)
    return max(values), values[-1]


def _cell(value):
    return 'n/a' if value is None else f'{value:6.2f}'


def format_table(report):
    """The report as a small table for the console."""
    rows = [('majority class', report['majority_class'])]
    lr = report.get('logistic_regression')
    if lr:
        rows.append((f'logistic regression ({lr["input"]}, '
                     f'{lr["features"]} features)', lr['accuracy']))
    ann = report.get('relu_ann')
    if ann:
        rows.append((f'ReLU ANN (this model, {ann["epochs"]} epochs)',
                     ann['accuracy']))
    snn = report.get('snn')
    if snn:
        rows.append((f'SNN ({snn["source"]})', snn['accuracy']))
    width = max(len(name) for name, _ in rows)
    lines = [f'baselines on the {report["split"]} split of '
             f'{report["config"]} ({report["eval_samples"]} samples, '
             f'{report["num_classes"]} classes; trained on '
             f'{report["train_samples"]})',
             f'  {"model":<{width}}  top-1 (%)']
    lines += [f'  {name:<{width}}  {_cell(value)}' for name, value in rows]
    return '\n'.join(lines)


def baseline_line(path, snn_accuracy=None):
    """One line summing up ``baseline.json`` at ``path`` (for bidl-test);
    None when there is no such file."""
    if not osp.isfile(path):
        return None
    try:
        with open(path) as f:
            report = json.load(f)
        parts = []
        lr, ann = report.get('logistic_regression'), report.get('relu_ann')
        if lr:
            parts.append(f'logistic regression {lr["accuracy"]:.2f}%')
        if ann:
            parts.append(f'ReLU ANN {ann["accuracy"]:.2f}% '
                         f'({ann["epochs"]} epochs)')
        split = report['split']
    except (OSError, ValueError, KeyError, TypeError) as err:
        return (f'baseline: {path} is unreadable ({err}); rerun '
                'tools/baseline.py')
    if isinstance(snn_accuracy, (int, float)) and math.isfinite(
            snn_accuracy):
        parts.append(f'this checkpoint {snn_accuracy:.2f}% (test split)')
    return (f'baseline ({split} split, {path}): ' + ', '.join(parts))


def baseline_summary(path):
    """What bidl-test's JSON report says of ``baseline.json`` at ``path``:
    ``{path, split, majority_class, logistic_regression, relu_ann}`` (top-1
    %; None for a baseline that was not run), or ``{path, error}`` when the
    file is unreadable."""
    try:
        with open(path) as f:
            report = json.load(f)
        lr, ann = report.get('logistic_regression'), report.get('relu_ann')
        return dict(path=path, split=report['split'],
                    majority_class=report.get('majority_class'),
                    logistic_regression=lr['accuracy'] if lr else None,
                    relu_ann=ann['accuracy'] if ann else None)
    except (OSError, ValueError, KeyError, TypeError) as err:
        return dict(path=path, error=f'unreadable ({err}); rerun '
                    'tools/baseline.py')


def find_baseline(checkpoint, work_dir):
    """The path of the ``baseline.json`` beside ``checkpoint``, else in
    ``work_dir``; None when neither exists (or the checkpoint is a URL and
    the work dir has none)."""
    folders = [osp.dirname(osp.abspath(checkpoint))] if '://' not in str(
        checkpoint) else []
    folders.append(osp.abspath(work_dir))
    for folder in dict.fromkeys(folders):
        path = osp.join(folder, 'baseline.json')
        if osp.isfile(path):
            return path
    return None


def check_split(cfg, split):
    """The dataloader config of ``split`` ('val' or 'test')."""
    loader = cfg.get(f'{split}_dataloader')
    if not loader:
        raise ConfigError(f'the config has no {split}_dataloader; choose '
                          'the other split with --split')
    return loader
