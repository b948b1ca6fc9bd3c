"""Verification inputs: the first samples of the config's validation split.

The validation split is the one a reduced-precision export must be judged
on (the issue's "accuracy change on the validation split"): it is what the
training run selected its checkpoint by, so the deployed and PyTorch top-1
accuracies in the report are comparable with the training log. Configs
without a ``val_dataloader`` fall back to the test split; the report names
the split used.
"""
import torch

from bidl_train.errors import ConfigError
from bidl_train.registry import DATASETS

__all__ = ['verification_batch']


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
    dataset = DATASETS.build(dataset_cfg)
    if len(dataset) == 0:
        raise ConfigError(f'the {split} dataset is empty')
    samples = [dataset[i] for i in range(min(max(count, 1), len(dataset)))]
    inputs = torch.stack([torch.as_tensor(s['inputs']) for s in samples])
    labels = torch.as_tensor([int(s['label']) for s in samples])
    data = model.data_preprocessor(dict(inputs=inputs, label=labels), False)
    return data['inputs'], labels.tolist(), split
