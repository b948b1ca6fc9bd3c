"""Run a model on a batch and keep what its neurons did.

Used by the spike monitor (one validation sample per validation) and by
``bidl-test --show-dir`` (the misclassified samples): both need the same
"preprocess, forward in evaluation mode, record every neuron layer" step.
"""
from dataclasses import dataclass, field

import torch

from .recording import membrane_thresholds, membrane_trace, record_activity
from .spikes import layer_raster, rate_over_time

__all__ = ['Observation', 'observe_batch', 'slice_batch']


@dataclass
class Observation:
    """Logits and per-layer records of one observed forward call."""
    logits: torch.Tensor  # [b, classes] for the kept samples
    spikes: dict  # {layer: Tensor[T, b, ...]}
    membranes: dict = field(default_factory=dict)  # {layer: {state: [T,b,..]}}
    # {'<layer>/<state>': Threshold} of the potential states in membranes
    thresholds: dict = field(default_factory=dict)

    def rasters(self, sample=0, max_neurons=None):
        """``{layer: LayerRaster}`` of one kept sample (the grid and which
        neurons its rows are)."""
        return {name: layer_raster(out, sample, max_neurons)
                for name, out in self.spikes.items()}

    def rates_over_time(self, sample=0):
        """``{layer: float [T]}`` of one kept sample."""
        return {name: rate_over_time(out, sample)
                for name, out in self.spikes.items()}


def slice_batch(data_batch, start, stop):
    """Entries ``start:stop`` of a collated batch (tensors and lists)."""
    if isinstance(data_batch, dict):
        return {k: slice_batch(v, start, stop) for k, v in data_batch.items()}
    if torch.is_tensor(data_batch) and data_batch.dim() > 0:
        return data_batch[start:stop]
    if isinstance(data_batch, (list, tuple)):
        return type(data_batch)(data_batch[start:stop])
    return data_batch


@torch.no_grad()
def observe_batch(model, data_batch, samples=None, membrane=False):
    """Forward ``data_batch`` (as the data loader yields it) in eval mode.

    Args:
        model: a bidl-train model (data preprocessor + ``mode='tensor'``),
            not wrapped in DDP.
        data_batch (dict): a collated batch.
        samples (list[int], optional): batch indices to keep (all if None).
        membrane (bool): also replay every neuron's ``step()`` to get its
            membrane state at every step.

    Returns:
        Observation: logits and per-layer spikes of the kept samples.
    """
    was_training = model.training
    model.eval()
    try:
        data = model.data_preprocessor(data_batch, False)
        with record_activity(model, samples=samples,
                             keep_inputs=membrane) as records:
            logits = model(data['inputs'], data.get('data_samples'),
                           mode='tensor')
        if samples is not None:
            logits = logits[list(samples)]
        membranes, thresholds = {}, {}
        if membrane:
            for name, record in records.items():
                membranes[name] = membrane_trace(record.module, record.input)
                for state, value in membrane_thresholds(
                        record.module, membranes[name]).items():
                    thresholds[f'{name}/{state}'] = value
        return Observation(
            logits=logits.detach().float().cpu(),
            spikes={name: r.output for name, r in records.items()},
            membranes=membranes, thresholds=thresholds)
    finally:
        model.train(was_training)
