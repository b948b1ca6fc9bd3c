"""Analysis figures of a simulation (matplotlib, written as PNG files).

``raster.png`` (spike raster of every recorded population),
``rate.png`` (population firing rate in bins), ``isi_cv.png`` (histogram of
per-neuron ISI CVs), ``correlation.png`` (histogram of pairwise Pearson
r of binned trains) and ``traces.png`` (recorded state traces).
"""
import os.path as osp

import numpy as np

from .analysis import (binned_counts, isi_cv, pairwise_correlation,
                       population_rate)


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def plot_all(result, out_dir, trial=0, bin_ms=5.0):
    """Write the five figures into ``out_dir``; returns their paths."""
    plt = _pyplot()
    pops = list(result.spikes)
    paths = []

    fig, ax = plt.subplots(figsize=(8, 4))
    offset = 0
    for pop in pops:
        t, i = result.spike_times(pop, trial)
        ax.scatter(t, i + offset, s=1.0, label=pop)
        offset += result.sizes[pop]
    ax.set_xlabel('time (ms)')
    ax.set_ylabel('neuron')
    ax.set_xlim(0, result.duration)
    ax.set_title(f'spike raster (trial {trial})')
    if pops:
        ax.legend(loc='upper right', markerscale=5)
    paths.append(_save(fig, plt, osp.join(out_dir, 'raster.png')))

    fig, ax = plt.subplots(figsize=(8, 3))
    for pop in pops:
        t, _ = result.spike_times(pop, trial)
        centres, rate = population_rate(t, result.sizes[pop],
                                        result.duration, bin_ms)
        ax.plot(centres, rate, label=pop)
    ax.set_xlabel('time (ms)')
    ax.set_ylabel(f'rate (Hz, {bin_ms:g} ms bins)')
    ax.set_title('population firing rate')
    if pops:
        ax.legend()
    paths.append(_save(fig, plt, osp.join(out_dir, 'rate.png')))

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for pop in pops:
        t, i = result.spike_times(pop, trial)
        cv = isi_cv(t, i, result.sizes[pop])
        cv = cv[np.isfinite(cv)]
        if len(cv):
            ax.hist(cv, bins=20, alpha=0.6, label=pop)
    ax.set_xlabel('ISI coefficient of variation')
    ax.set_ylabel('neurons')
    ax.set_title('ISI CV (neurons with >= 3 spikes)')
    paths.append(_save(fig, plt, osp.join(out_dir, 'isi_cv.png')))

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for pop in pops:
        t, i = result.spike_times(pop, trial)
        counts = binned_counts(t, i, result.sizes[pop], result.duration,
                               bin_ms)
        r, keep = pairwise_correlation(counts)
        if len(keep) >= 2:
            ax.hist(r[~np.eye(len(keep), dtype=bool)], bins=40, alpha=0.6,
                    label=pop)
    ax.set_xlabel(f'Pearson r of {bin_ms:g} ms binned counts')
    ax.set_ylabel('pairs')
    ax.set_title('pairwise correlation')
    paths.append(_save(fig, plt, osp.join(out_dir, 'correlation.png')))

    # one panel per recorded (population, variable, neuron), at most 8
    rows = [(pop, var, j, neuron) for pop, d in result.traces.items()
            for var in d for j, neuron in enumerate(result.trace_neurons[pop])
            ][:8]
    fig, axes = plt.subplots(max(len(rows), 1), 1, squeeze=False,
                             sharex=True,
                             figsize=(8, 1.6 * max(len(rows), 1) + 0.6))
    time = np.arange(int(round(result.duration / result.dt))) * result.dt
    for ax, (pop, var, j, neuron) in zip(axes[:, 0], rows):
        data = result.traces[pop][var][:, trial, j]
        ax.plot(time[:len(data)], data, lw=0.8)
        ax.set_ylabel(f'{pop}[{neuron}]\n{var}', fontsize=8)
    axes[-1, 0].set_xlabel('time (ms)')
    axes[0, 0].set_title(f'state traces (trial {trial})' if rows else
                         'no traces recorded')
    paths.append(_save(fig, plt, osp.join(out_dir, 'traces.png')))
    return paths


def _save(fig, plt, path):
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
