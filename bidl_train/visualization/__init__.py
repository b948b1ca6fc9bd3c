"""Seeing what the network does: spike statistics, rasters, figures,
progress bars and report files.

One concern per module:

* :mod:`.spikes`: numbers from spike tensors (rates, silent/saturated
  neurons, rasters);
* :mod:`.recording`: forward hooks on the neurons, membrane replay;
* :mod:`.observe`: run a model on a batch and keep what its neurons did;
* :mod:`.figures`: matplotlib figures (Agg, no pyplot);
* :mod:`.reports`: CSV/PNG files written by ``bidl-test``;
* :mod:`.events`: event streams rendered as frames and GIFs;
* :mod:`.curves`: training curves of several work dirs;
* :mod:`.progress`: console progress bars that vanish off a terminal.
"""
from bidl_train.utils.progress import ProgressDisplay, is_interactive, track
from .spikes import LayerSpikeStats, raster, rate_over_time

__all__ = [
    'LayerSpikeStats', 'ProgressDisplay', 'is_interactive', 'raster',
    'rate_over_time', 'track'
]
