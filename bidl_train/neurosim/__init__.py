"""Neural-dynamics toolkit: populations, projections, plasticity, analysis.

A network of neuron populations (LIF, Izhikevich, AdEx, Hodgkin-Huxley,
two-compartment; Poisson and spike-file sources) joined by projections
(all-to-all, fixed probability, one-to-one; weights, delays, exponential
current synapses, optional STDP), driven by DC currents, simulated in
batched tensor form with a fixed step on CPU or GPU. ``tools/simulate.py
CONFIG`` runs a config and writes spikes, traces and analysis plots.

The simulator shares its maths with the training stack where the models
are the same: Izhikevich's equations and regimes
(:mod:`bidl_train.neurons.izhikevich`) and trace-based STDP
(:class:`bidl_train.learning.rules.STDP`). Its LIF differs on purpose: it is
integrated exactly in physical units (ms, mV) with a refractory period,
where the trainable :class:`bidl_train.neurons.LIF` is BIDL's unit-less
discrete-time neuron. Population models are named in a config's
``populations.<name>.model.type`` (:data:`NEURON_MODELS`), not in the
training registries: they are not ``nn.Module`` layers.
"""
from .analysis import (binned_counts, firing_rates, isi_cv,
                       pairwise_correlation, population_rate, summarize)
from .network import Network, SimulationResult, simulate
from .neurons import (IZHIKEVICH_REGIMES, LIF, NEURON_MODELS, AdEx,
                      HodgkinHuxley, Izhikevich, TwoCompartment)
from .plasticity import STDP
from .projections import Projection
from .sources import DCInput, PoissonSource, SpikeFileSource

__all__ = [
    'Network', 'SimulationResult', 'simulate', 'LIF', 'Izhikevich', 'AdEx',
    'HodgkinHuxley', 'TwoCompartment', 'NEURON_MODELS', 'IZHIKEVICH_REGIMES',
    'STDP', 'Projection', 'DCInput', 'PoissonSource', 'SpikeFileSource',
    'firing_rates', 'population_rate', 'isi_cv', 'binned_counts',
    'pairwise_correlation', 'summarize'
]
