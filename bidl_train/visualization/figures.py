"""Matplotlib figures of spikes, rates and confusion matrices.

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas
directly: no pyplot, no global figure registry, no display needed. Every
``*_figure`` function returns a ``Figure``; :func:`to_rgb` turns it into the
``uint8 [H, W, 3]`` array that mmengine's visualizer and TensorBoard take,
and :func:`save_png` writes it to disk.
"""
import math
import os
import os.path as osp

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .spikes import LayerRaster

__all__ = [
    'confusion_figure', 'firing_rates_figure', 'histograms_figure',
    'new_figure', 'per_class_figure', 'raster_figure',
    'rates_over_time_figure', 'save_png', 'to_rgb'
]


def new_figure(width, height, dpi=100, layout=None):
    """A figure attached to an Agg canvas.

    ``layout='constrained'`` lets matplotlib place the axes at every draw
    with room reserved for the suptitle, axis titles and labels (use it
    instead of ``tight_layout``, which can let a suptitle overlap the first
    row of a tall grid).
    """
    fig = Figure(figsize=(width, height), dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def to_rgb(fig):
    """Render ``fig`` to an RGB ``uint8`` array ``[H, W, 3]``."""
    canvas = fig.canvas
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    return np.ascontiguousarray(rgba[..., :3])


def save_png(fig, path):
    """Write ``fig`` as PNG to ``path`` (folders created) and return it."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(path, format='png', bbox_inches='tight')
    return path


def raster_figure(rasters, title=None):
    """Spike raster per layer, stacked vertically.

    Args:
        rasters (dict[str, LayerRaster | ndarray]): ``{layer: raster}`` as
            from :func:`bidl_train.visualization.spikes.layer_raster` (or
            a bare ``bool [neurons, T]`` grid, taken as every neuron).
        title (str, optional): figure title.

    Every spike is a black cell at (step, neuron). Each panel's title says
    the layer and which of its neurons are shown; the y ticks are their
    neuron indices.
    """
    if not rasters:
        raise ValueError('raster_figure needs at least one layer')
    rasters = {name: _as_layer_raster(r) for name, r in rasters.items()}
    heights = [max(1.0, min(3.0, r.grid.shape[0] / 40)) for r in
               rasters.values()]
    fig = new_figure(8, sum(heights) + 1.0)
    axes = fig.subplots(len(rasters), 1, squeeze=False,
                        gridspec_kw=dict(height_ratios=heights))[:, 0]
    for ax, (name, layer) in zip(axes, rasters.items()):
        grid = layer.grid
        neurons, steps = grid.shape
        ax.imshow(grid.astype(np.float32), aspect='auto', cmap='Greys',
                  vmin=0, vmax=1, interpolation='nearest',
                  extent=(-0.5, steps - 0.5, neurons - 0.5, -0.5))
        rate = grid.mean() if grid.size else 0.0
        rows = _tick_rows(neurons)
        ax.set_yticks(rows)
        ax.set_yticklabels([str(int(layer.indices[r])) for r in rows])
        ax.set_ylabel('neuron index', fontsize=8)
        ax.set_title(f'{name}: {layer.describe()}; their rate {rate:.3f}',
                     fontsize=9, loc='left')
        ax.tick_params(labelsize=7)
    axes[-1].set_xlabel('time step')
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _as_layer_raster(raster):
    if isinstance(raster, LayerRaster):
        return raster
    grid = np.asarray(raster, dtype=bool)
    return LayerRaster(grid=grid, indices=np.arange(grid.shape[0]),
                       total=grid.shape[0])


def _tick_rows(rows, most=6):
    """Up to ``most`` evenly spaced rows, the first and last included."""
    if rows <= most:
        return list(range(rows))
    return sorted({int(round(r)) for r in np.linspace(0, rows - 1, most)})


def rates_over_time_figure(rates, title=None):
    """Mean firing rate per step, one line per layer.

    Args:
        rates (dict[str, ndarray]): ``{layer: float [T]}``.
    """
    if not rates:
        raise ValueError('rates_over_time_figure needs at least one layer')
    fig = new_figure(7, 4)
    ax = fig.add_subplot(1, 1, 1)
    for name, values in rates.items():
        ax.plot(np.arange(len(values)), values, marker='o', markersize=3,
                label=name)
    ax.set_xlabel('time step')
    ax.set_ylabel('firing rate (spikes / neuron / step)')
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc='best')
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def _tick_style(labels):
    """Rotate class labels when they would overlap."""
    crowded = len(labels) > 6 or max(len(x) for x in labels) > 6
    return dict(rotation=40, ha='right') if crowded else dict(ha='center')


def _class_labels(count, class_names):
    if class_names and len(class_names) >= count:
        return [str(c) for c in class_names[:count]]
    return [str(i) for i in range(count)]


def confusion_figure(confusion, class_names=None, title=None):
    """The confusion matrix as a heat map, rows normalised, counts written.

    Rows are true classes, columns predicted ones; the colour is the
    fraction of the row (recall per class), the text the count.
    """
    confusion = np.asarray(confusion, dtype=np.int64)
    n = confusion.shape[0]
    labels = _class_labels(n, class_names)
    totals = confusion.sum(1, keepdims=True)
    with np.errstate(invalid='ignore', divide='ignore'):
        share = np.where(totals > 0, confusion / np.maximum(totals, 1), 0.0)
    size = min(14, 2.5 + 0.45 * n)
    fig = new_figure(size + 1.2, size)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(share, cmap='Blues', vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04,
                 label='fraction of the true class')
    if n <= 30:
        fontsize = max(5, 10 - n // 4)
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(confusion[i, j]), ha='center', va='center',
                        fontsize=fontsize,
                        color='white' if share[i, j] > 0.5 else 'black')
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(labels, fontsize=8, **_tick_style(labels))
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel('predicted class')
    ax.set_ylabel('true class')
    correct = np.trace(confusion)
    total = confusion.sum()
    acc = 100.0 * correct / total if total else float('nan')
    ax.set_title(title or f'confusion matrix ({total} samples, '
                 f'accuracy {acc:.2f}%)', fontsize=10)
    fig.tight_layout()
    return fig


def per_class_figure(per_class, class_names=None, title=None):
    """Bar chart of per-class accuracy in percent (NaN: no sample)."""
    values = np.asarray(
        [np.nan if v is None else v for v in per_class], dtype=float)
    n = len(values)
    labels = _class_labels(n, class_names)
    fig = new_figure(min(16, 3 + 0.4 * n), 4)
    ax = fig.add_subplot(1, 1, 1)
    shown = np.nan_to_num(values, nan=0.0)
    bars = ax.bar(range(n), shown, color='tab:blue')
    for bar, value in zip(bars, values):
        text = 'n/a' if math.isnan(value) else f'{value:.0f}'
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 1,
                text, ha='center', va='bottom', fontsize=7)
    ax.set_xticks(range(n))
    ax.set_xticklabels(labels, fontsize=8, **_tick_style(labels))
    ax.set_ylim(0, 110)
    ax.set_ylabel('accuracy (%)')
    ax.set_title(title or 'per-class accuracy', fontsize=10)
    fig.tight_layout()
    return fig


def histograms_figure(values, bins=50, xlabel='value', title=None,
                      thresholds=None):
    """One histogram per entry of ``values`` (``{name: 1-D array}``).

    ``thresholds`` (``{name: Threshold}``, as in ``Observation.thresholds``)
    adds a labelled vertical line at the firing threshold of that entry (a
    shaded band between two lines when the threshold differs per neuron).
    """
    if not values:
        raise ValueError('histograms_figure needs at least one entry')
    thresholds = thresholds or {}
    count = len(values)
    cols = min(3, count)
    rows = math.ceil(count / cols)
    fig = new_figure(4 * cols, 2.8 * rows + 0.5)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False).ravel())
    for ax, (name, data) in zip(axes, values.items()):
        data = np.asarray(data, dtype=float).ravel()
        ax.hist(data, bins=bins, color='tab:purple')
        ax.set_title(f'{name}\nmean {data.mean():.3f}, std {data.std():.3f}',
                     fontsize=8)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(labelsize=7)
        if name in thresholds:
            _threshold_line(ax, thresholds[name])
    for ax in axes[count:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _threshold_line(ax, threshold):
    """A dashed red line at the threshold (a band for a per-neuron one)."""
    style = dict(color='tab:red', linestyle='--', linewidth=1.2)
    ax.axvline(threshold.low, label=threshold.label(), **style)
    if not threshold.uniform:
        ax.axvline(threshold.high, **style)
        ax.axvspan(threshold.low, threshold.high, color='tab:red',
                   alpha=0.15)
    ax.legend(fontsize=7, loc='best')


def firing_rates_figure(rates, title=None):
    """Horizontal bars of the mean firing rate of each layer.

    ``rates`` is ``{layer: rate}``.
    """
    if not rates:
        raise ValueError('firing_rates_figure needs at least one layer')
    names = list(rates)
    values = [rates[n] for n in names]
    fig = new_figure(8, 1.2 + 0.35 * len(names))
    ax = fig.add_subplot(1, 1, 1)
    bars = ax.barh(range(len(names)), values, color='tab:orange')
    for bar, value in zip(bars, values):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2,
                f' {value:.4f}', va='center', fontsize=7)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(max(values) * 1.25, 1e-3))
    ax.set_xlabel('firing rate (spikes / neuron / step)')
    ax.set_title(title or 'mean firing rate per layer', fontsize=10)
    fig.tight_layout()
    return fig
