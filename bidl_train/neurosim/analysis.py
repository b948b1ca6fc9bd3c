"""Spike-train statistics (numpy; spikes as ``(times ms, neuron index)``).

* firing rate of neuron i: ``n_i / duration`` (Hz, duration in s);
* population rate: spikes of all neurons per bin / (N * bin width) (Hz);
* ISI coefficient of variation: ``CV = std(ISI) / mean(ISI)`` over the
  intervals of one neuron (0 for a clock, 1 for a Poisson process); NaN
  with fewer than ``min_spikes`` spikes;
* pairwise Pearson correlation of binned counts ``c_i[k]``:
  ``r_ij = cov(c_i, c_j) / (std(c_i) std(c_j))``; neurons without spikes
  (zero variance) are left out.
"""
import numpy as np


def firing_rates(times, indices, n, duration):
    """Rate of every neuron in Hz (``duration`` in ms)."""
    counts = np.bincount(np.asarray(indices, np.int64), minlength=n)[:n]
    return counts / (duration / 1000.0)


def population_rate(times, n, duration, bin_ms=5.0):
    """``(bin centres ms, rate Hz)`` of the whole population."""
    edges = np.arange(0.0, duration + bin_ms, bin_ms)
    counts, _ = np.histogram(np.asarray(times, np.float64), bins=edges)
    return (edges[:-1] + bin_ms / 2.0), counts / (n * bin_ms / 1000.0)


def isi_cv(times, indices, n, min_spikes=3):
    """ISI coefficient of variation per neuron (NaN if too few spikes)."""
    times = np.asarray(times, np.float64)
    indices = np.asarray(indices, np.int64)
    cv = np.full(n, np.nan)
    for i in range(n):
        t = np.sort(times[indices == i])
        if len(t) >= min_spikes:
            isi = np.diff(t)
            if isi.mean() > 0:
                cv[i] = isi.std() / isi.mean()
    return cv


def binned_counts(times, indices, n, duration, bin_ms=5.0):
    """Spike counts ``[n, bins]`` in bins of ``bin_ms``."""
    bins = int(np.ceil(duration / bin_ms))
    counts = np.zeros((n, bins))
    k = np.minimum((np.asarray(times, np.float64) // bin_ms).astype(np.int64),
                   bins - 1)
    np.add.at(counts, (np.asarray(indices, np.int64), k), 1)
    return counts


def pairwise_correlation(counts):
    """``(r [m, m], kept neuron indices)`` for neurons with variance."""
    counts = np.asarray(counts, np.float64)
    keep = np.flatnonzero(counts.std(axis=1) > 0)
    if len(keep) < 2:
        return np.zeros((len(keep), len(keep))), keep
    return np.corrcoef(counts[keep]), keep


def mean_pairwise_correlation(counts):
    """Mean off-diagonal Pearson r (NaN with fewer than two active)."""
    r, keep = pairwise_correlation(counts)
    if len(keep) < 2:
        return float('nan')
    off = r[~np.eye(len(keep), dtype=bool)]
    return float(off.mean())


def summarize(result, trial=0, bin_ms=5.0):
    """Per recorded population: spikes of every trial; for ``trial``: mean
    rate, mean ISI CV and mean pairwise r."""
    out = {}
    for pop in result.spikes:
        n = result.sizes[pop]
        times, idx = result.spike_times(pop, trial)
        rates = firing_rates(times, idx, n, result.duration)
        cv = isi_cv(times, idx, n)
        counts = binned_counts(times, idx, n, result.duration, bin_ms)
        trials = result.spikes[pop][0]
        out[pop] = dict(
            neurons=n,
            spikes=int(len(times)),
            spikes_per_trial=np.bincount(
                trials, minlength=result.batch)[:result.batch].tolist(),
            mean_rate_hz=float(rates.mean()),
            mean_isi_cv=float(np.nanmean(cv)) if np.isfinite(cv).any() else
            None,
            mean_pairwise_r=_none_if_nan(mean_pairwise_correlation(counts)),
        )
    return out


def _none_if_nan(x):
    return None if x != x else x
