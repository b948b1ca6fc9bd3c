"""Verification inputs: the first samples of the config's test dataset."""
import torch

from bidl_train.errors import ConfigError
from bidl_train.registry import DATASETS


def verification_batch(cfg, model, count):
    """``([T, N, ...] inputs, labels)`` of the first ``count`` test samples.

    The samples go through the model's own data preprocessor, so the deployed
    graph sees exactly what the PyTorch model sees. At least one sample is
    always taken: it is the tracing example even when ``count`` is 0.
    """
    loader = cfg.get('test_dataloader') or cfg.get('val_dataloader')
    if loader is None or loader.get('dataset') is None:
        raise ConfigError('the config has no test_dataloader.dataset to take '
                          'verification samples from')
    dataset = DATASETS.build(loader['dataset'])
    if len(dataset) == 0:
        raise ConfigError('the test dataset is empty')
    samples = [dataset[i] for i in range(min(max(count, 1), len(dataset)))]
    inputs = torch.stack([torch.as_tensor(s['inputs']) for s in samples])
    labels = torch.as_tensor([int(s['label']) for s in samples])
    data = model.data_preprocessor(dict(inputs=inputs, label=labels), False)
    return data['inputs'], labels.tolist()
