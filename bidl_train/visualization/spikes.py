"""Numbers about spike tensors: rates, silent and saturated neurons, rasters.

Everything here takes plain tensors shaped like a neuron's multi-step output,
``[T, B, ...]`` (time first, then batch, then the neurons of the layer), and
returns plain numbers or arrays; nothing touches a model. Definitions:

* **firing rate**: mean output over time, samples and neurons (spikes per
  neuron per step for spiking layers);
* **silent** neuron: emits no spike at any step for any sample of the batch
  (a "dead" neuron);
* **saturated** neuron: spikes at every step for every sample of the batch.

A layer whose output holds values other than 0 and 1 (analog/LIAF mode) has
no saturation; its ``saturated`` fraction is reported as NaN and ``silent``
means "output exactly 0 everywhere".
"""
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    'LayerRaster', 'LayerSpikeStats', 'layer_raster', 'raster',
    'raster_rows', 'rate_over_time'
]


@dataclass(frozen=True)
class LayerSpikeStats:
    """Summary of one layer's output over one observed batch, as
    :func:`bidl_train.engine.hooks.spike_monitor.read_layer_stats` computes
    it."""
    rate: float  # mean output per neuron per step
    silent: float  # fraction of neurons that never fire
    saturated: float  # fraction firing at every step (NaN: analog layer)
    neurons: int  # neurons per sample in the layer
    binary: bool  # whether the output is made of spikes (0/1 only)


def _check_sequence(spikes):
    if not torch.is_tensor(spikes):
        spikes = torch.as_tensor(np.asarray(spikes))
    if spikes.dim() < 3:
        raise ValueError('expected a [T, B, neurons...] tensor, got shape '
                         f'{tuple(spikes.shape)}')
    return spikes.detach()


@dataclass(frozen=True)
class LayerRaster:
    """The raster of one sample and which neurons its rows are.

    ``grid`` is ``bool [rows, T]``; row ``i`` is neuron ``indices[i]`` of the
    layer's ``total`` neurons (flattened C-order index into the per-sample
    ``shape``).
    """
    grid: np.ndarray
    indices: np.ndarray
    total: int
    shape: tuple = ()

    def describe(self):
        """Which neurons are shown, e.g. ``'neurons 0-63 (all 64)'`` or
        ``'64 of 4096 neurons (16x16x16), evenly spaced: 0, 65, ...,
        4095'``."""
        shown, first, last = len(self.indices), 0, 0
        if shown:
            first, last = int(self.indices[0]), int(self.indices[-1])
        of = f'{self.total}'
        if len(self.shape) > 1:
            of += ' (' + 'x'.join(str(d) for d in self.shape) + ')'
        if shown == self.total:
            return f'neurons {first}-{last} (all {of})'
        if last - first + 1 == shown:
            return f'neurons {first}-{last} of {of} (first {shown})'
        listed = [str(int(i)) for i in self.indices]
        if shown > 4:
            listed = listed[:3] + ['...', listed[-1]]
        return (f'{shown} of {of} neurons, evenly spaced: '
                f'{", ".join(listed)}')


def raster_rows(total, max_neurons=None):
    """Indices of the neurons a raster keeps: all, or ``max_neurons``
    evenly spaced ones (the first and, when more than one, the last)."""
    if max_neurons is None or total <= max_neurons:
        return np.arange(total)
    return np.unique(
        np.linspace(0, total - 1, max_neurons).round().astype(int))


def layer_raster(spikes, sample=0, max_neurons=None):
    """:class:`LayerRaster` of one sample of a ``[T, B, ...]`` output.

    Row ``n`` column ``t`` is True when the neuron emits a non-zero output
    at step ``t``; see :func:`raster_rows` for which neurons are kept.
    """
    spikes = _check_sequence(spikes)
    if not 0 <= sample < spikes.shape[1]:
        raise ValueError(f'sample {sample} outside the batch of '
                         f'{spikes.shape[1]}')
    grid = (spikes[:, sample].flatten(1) != 0).T.cpu().numpy()  # [N, T]
    keep = raster_rows(grid.shape[0], max_neurons)
    return LayerRaster(grid=grid[keep], indices=keep, total=grid.shape[0],
                       shape=tuple(spikes.shape[2:]))


def raster(spikes, sample=0, max_neurons=None):
    """Spike raster of one sample: ``bool array [neurons, T]``.

    ``spikes`` is ``[T, B, ...]``; row ``n`` column ``t`` is True when neuron
    ``n`` (in flattened C-order) emits a non-zero output at step ``t``. With
    ``max_neurons``, evenly spaced neurons are kept (the first and, when more
    than one is kept, the last included) so that a large layer still fits in
    a plot; :func:`layer_raster` also says which.
    """
    return layer_raster(spikes, sample, max_neurons).grid


def rate_over_time(spikes, sample=None):
    """Mean output per step: ``float array [T]``.

    Averaged over neurons, and over the batch unless ``sample`` picks one.
    """
    spikes = _check_sequence(spikes).float()
    if sample is not None:
        spikes = spikes[:, sample:sample + 1]
    return spikes.flatten(1).mean(1).cpu().numpy()
