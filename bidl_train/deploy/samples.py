"""Verification inputs: the first samples of the config's validation split,
or, when the user allows it and that split's data is not on disk, random
inputs of the config's input shape.

The validation split is the one a reduced-precision export must be judged
on (the issue's "accuracy change on the validation split"): it is what the
training run selected its checkpoint by, so the deployed and PyTorch top-1
accuracies in the report are comparable with the training log. Configs
without a ``val_dataloader`` fall back to the test split; the report names
the split used.

Random inputs (``bidl-deploy --random-inputs [N]``, ``deploy =
dict(random_inputs=N)``) are sparse binary frames (or token ids), as
``tools/analyze.py --random`` uses: they check that the deployed graph
computes what the PyTorch model computes, not accuracy (they have no
labels). They are used only when the split cannot be built from disk, and
the report says so (:func:`verification_samples`' ``inputs``).
"""
import torch

from bidl_train.errors import ConfigError, DataError
from bidl_train.registry import DATASETS
from bidl_train.utils.time_steps import config_num_steps

__all__ = ['verification_batch', 'verification_samples', 'random_batch',
           'input_shape', 'RANDOM_DENSITY', 'RANDOM_SEED']

#: fraction of ones in random binary inputs (DVS frames after thresholding
#: are that sparse) and the seed they are drawn with (reproducible reports)
RANDOM_DENSITY = 0.1
RANDOM_SEED = 0

_HOW_TO_ALLOW = ('pass --random-inputs [N] to bidl-deploy (deploy = dict('
                 'random_inputs=N) in a training config) to verify on N '
                 'random inputs of the config\'s input shape instead')


def _split(cfg):
    for split in ('val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if loader is not None and loader.get('dataset') is not None:
            return split, loader['dataset']
    raise ConfigError('the config has no val_dataloader.dataset (or '
                      'test_dataloader.dataset) to take verification samples '
                      'from')


def verification_batch(cfg, model, count):
    """``([T, N, ...] inputs, labels, split)`` of the first ``count`` samples
    of the validation split (``'val'``, or ``'test'`` when the config has no
    validation loader).

    The samples go through the model's own data preprocessor, so the deployed
    graph sees exactly what the PyTorch model sees. At least one sample is
    always taken: it is the tracing example even when ``count`` is 0.
    """
    split, dataset_cfg = _split(cfg)
    return _data_batch(split, DATASETS.build(dataset_cfg), model, count)


def _data_batch(split, dataset, model, count):
    if len(dataset) == 0:
        raise ConfigError(f'the {split} dataset is empty')
    samples = [dataset[i] for i in range(min(max(count, 1), len(dataset)))]
    inputs = torch.stack([torch.as_tensor(s['inputs']) for s in samples])
    labels = torch.as_tensor([int(s['label']) for s in samples])
    data = model.data_preprocessor(dict(inputs=inputs, label=labels), False)
    return data['inputs'], labels.tolist(), split


def _dataset(cfg):
    """``(split, dataset, None)``, or ``(split, None, reason)`` when the
    config has no split to verify on or its data is not on disk (building
    it raises :class:`DataError`; a config mistake still raises)."""
    try:
        split, dataset_cfg = _split(cfg)
    except ConfigError as err:
        return None, None, str(err)
    try:
        return split, DATASETS.build(dataset_cfg), None
    except DataError as err:
        first = str(err).strip().splitlines()[0]
        return split, None, f'the {split} split is not on disk ({first})'


def verification_samples(cfg, model, count, random_inputs=None):
    """``(x_seq [T, N, ...], labels, split, inputs)`` to verify an export on.

    The first ``count`` samples of the validation (else test) split, as
    :func:`verification_batch`. When that split cannot be built from disk
    (a :class:`DataError`: its files are missing) or the config has no
    such split, ``random_inputs`` decides: None refuses in one line naming
    the option, an int ``N`` takes N random inputs instead (labels None).

    ``inputs`` describes what was used, for the report:
    ``dict(kind='data', split=..., samples=N)`` or ``dict(kind='random',
    samples=N, shape=[T, ...], density=..., seed=..., reason=...)``.
    """
    split, dataset, reason = _dataset(cfg)
    if dataset is None:
        if random_inputs is None:
            raise DataError(f'no data to verify the export on: {reason}; put '
                            f'the data in place, or {_HOW_TO_ALLOW}')
        x_seq = random_batch(cfg, model, max(random_inputs, 1))
        inputs = dict(kind='random', samples=int(x_seq.shape[1]),
                      shape=[int(x_seq.shape[0])] + list(x_seq.shape[2:]),
                      dtype=str(x_seq.dtype).replace('torch.', ''),
                      density=(RANDOM_DENSITY if x_seq.is_floating_point()
                               else None),
                      seed=RANDOM_SEED, reason=reason)
        return x_seq, None, None, inputs
    x_seq, labels, split = _data_batch(split, dataset, model, count)
    return x_seq, labels, split, dict(kind='data', split=split,
                                      samples=len(labels))


def input_shape(cfg, model=None):
    """``[T, ...]`` of one network input (after the data preprocessor) as
    the config gives it, for random inputs when no data is on disk.

    T is :func:`~bidl_train.utils.time_steps.config_num_steps`: the config's
    top-level ``num_steps`` (or its ``_input_shape`` hint), checked against
    the spike encoder of ``model``'s data preprocessor. The rest is the
    ``_input_shape`` hint ``(T, C, H, W)`` (needed where the backbone does
    not say its input, e.g. rate-coded images), else ``[T]`` token ids for
    a text backbone (one with a ``vocab_size``), else the backbone's
    ``in_channels``/``input_size``."""
    steps = config_num_steps(cfg, model=model)
    hint = cfg.get('_input_shape')
    if hint:
        return [steps] + [int(v) for v in hint[1:]]
    backbone = cfg.model.get('backbone') or {}
    if backbone.get('vocab_size'):  # a text backbone: token ids
        return [steps]
    size = backbone.get('input_size')
    channels = backbone.get('in_channels')
    if size is None or channels is None:
        raise ConfigError(
            f'cannot tell the input shape of backbone {backbone.get("type")} '
            '(no in_channels/input_size); add _input_shape = '
            '(num_steps, C, H, W) to the config')
    size = [size, size] if isinstance(size, int) else list(size)
    return [steps, int(channels)] + [int(s) for s in size]


def random_batch(cfg, model, count):
    """``[T, count, ...]`` random network inputs of the config's shape
    (:func:`input_shape`), drawn with :data:`RANDOM_SEED`: token ids below
    the vocabulary size for FastTextLif, else binary frames with
    :data:`RANDOM_DENSITY` ones."""
    shape = input_shape(cfg, model)
    gen = torch.Generator().manual_seed(RANDOM_SEED)
    vocab = getattr(getattr(model, 'backbone', None), 'vocab_size', None)
    if len(shape) == 1 and vocab:
        return torch.randint(0, int(vocab), (shape[0], count), generator=gen)
    x = torch.rand([shape[0], count] + shape[1:], generator=gen)
    return (x < RANDOM_DENSITY).float()
