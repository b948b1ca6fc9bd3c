"""Batch preparation between the data loader and the network.

Datasets yield samples with time first (``[T, ...]``) and the loader stacks
them batch first (``[B, T, ...]``). Inside the network time leads
(``[T, B, ...]``), so this module moves the batch to the model's device and
swaps the two leading axes. Labels and extra per-sample fields (``length`` for
padded text) travel in ``data_samples``.

Static data (images ``[B, C, H, W]``) has no time axis: with ``encoder=``
(a config of :mod:`bidl_train.models.encoders`, e.g.
``dict(type='RateEncoder', num_steps=20)``) the batch is encoded on the
device into ``[T, B, C, H, W]`` spike trains, already time first.
"""
import torch
from mmengine.model import BaseDataPreprocessor

from bidl_train.errors import ConfigError
from bidl_train.registry import MODELS


@MODELS.register_module()
class SpikingDataPreprocessor(BaseDataPreprocessor):
    """Move a collated batch to the device and make time the leading axis.

    Args:
        time_first (bool): swap ``[B, T, ...] -> [T, B, ...]``. Set False for
            models that consume batch-first inputs (e.g. a 3D conv stem).
        extra_keys (tuple[str]): per-sample fields copied to ``data_samples``
            besides ``label``.
        encoder (dict, optional): spike encoder applied to static batches
            ``[B, ...] -> [T, B, ...]`` (``time_first`` is then moot: the
            encoder puts time first).
    """

    def __init__(self, time_first=True, extra_keys=('length', 'soft_label'),
                 encoder=None):
        super().__init__()
        self.time_first = time_first
        self.extra_keys = tuple(extra_keys)
        if isinstance(encoder, dict):
            # imported here: registers the encoders in MODELS even before
            # the registry's ``locations`` list the module
            import bidl_train.models.encoders  # noqa: F401
            encoder = MODELS.build(encoder)
        if encoder is not None and not isinstance(encoder, torch.nn.Module):
            raise ConfigError(
                'SpikingDataPreprocessor: encoder must be a config dict of '
                'an encoder (RateEncoder, LatencyEncoder, ...), got '
                f'{type(encoder).__name__}')
        self.encoder = encoder

    def forward(self, data, training=False):
        if not isinstance(data, dict) or 'inputs' not in data:
            raise ConfigError(
                'the data loader must yield dicts with an "inputs" entry '
                '(collate_fn=dict(type="default_collate")); got '
                f'{type(data).__name__}')
        data = self.cast_data(data)
        inputs = data['inputs']
        if not isinstance(inputs, torch.Tensor):
            raise ConfigError(
                'batch "inputs" is not a tensor; use '
                'collate_fn=dict(type="default_collate") in the dataloader')
        if self.encoder is not None:
            with torch.no_grad():
                inputs = self.encoder(inputs)
        elif self.time_first:
            inputs = inputs.transpose(0, 1).contiguous()
        samples = {'label': data.get('label')}
        for key in self.extra_keys:
            if key in data:
                samples[key] = data[key]
        return dict(inputs=inputs, data_samples=samples)
