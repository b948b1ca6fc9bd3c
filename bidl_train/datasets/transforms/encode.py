"""Per-sample spike encoding inside a dataset pipeline.

The encoders themselves (rate, latency, population, delta, direct) are model
modules in :mod:`bidl_train.models.encoders`, where the data preprocessor
also uses them on whole batches. Data code does not import model code, so the
transform builds its encoder through the ``MODELS`` registry by name.
"""
import torch

from bidl_train.errors import ConfigError
from bidl_train.registry import MODELS, TRANSFORMS

#: the encoder types SpikeEncode accepts
ENCODER_TYPES = ('RateEncoder', 'LatencyEncoder', 'PopulationEncoder',
                 'DeltaEncoder', 'DirectEncoder')


@TRANSFORMS.register_module()
class SpikeEncode:
    """Pipeline transform: encode ``results[key]`` of one sample.

    A static sample ``[C, H, W]`` becomes ``[T, C, H, W]`` (population:
    ``[T, C * n, H, W]``), the layout event datasets yield, so the standard
    preprocessor (no ``encoder``) takes it from there.

    Args:
        encoder (dict | nn.Module): an encoder config, e.g.
            ``dict(type='RateEncoder', num_steps=20)``; one of
            ``ENCODER_TYPES``.
        key (str): the entry to encode.
    """

    def __init__(self, encoder, key='inputs'):
        if isinstance(encoder, dict):
            kind = encoder.get('type')
            if kind not in ENCODER_TYPES:
                raise ConfigError(
                    f'SpikeEncode: encoder.type must be one of '
                    f'{", ".join(ENCODER_TYPES)}; got {kind!r}')
            encoder = MODELS.build(encoder)
        if type(encoder).__name__ not in ENCODER_TYPES:
            raise ConfigError(
                f'SpikeEncode: encoder must be one of '
                f'{", ".join(ENCODER_TYPES)}; got {type(encoder).__name__}')
        self.encoder = encoder
        self.key = key

    @property
    def num_steps(self):
        """T of the encoded sample (None: as long as the signal, for
        ``DeltaEncoder``)."""
        return self.encoder.num_steps

    def __call__(self, results):
        if self.key not in results:
            raise ConfigError(f'SpikeEncode: the sample has no {self.key!r} '
                              f'entry (has {sorted(results)})')
        with torch.no_grad():
            results[self.key] = self.encoder(results[self.key])
        return results

    def __repr__(self):
        return f'SpikeEncode(encoder={self.encoder!r}, key={self.key!r})'
