"""Training curves of several runs from the scalars mmengine wrote.

``LocalVisBackend`` appends one JSON object per line to
``<work_dir>/<timestamp>/vis_data/scalars.json``: training lines carry
``iter`` (the global iteration) besides ``loss``, ``lr``...; validation
lines carry the metrics and ``step`` (the epoch for by-epoch training).
A resumed run adds another timestamp folder; the folders are read in
order and a later value for the same step replaces an earlier one.
"""
import glob
import json
import os.path as osp

import numpy as np
from matplotlib import colormaps
from matplotlib.ticker import MaxNLocator

from bidl_train.errors import ConfigError, DataError

from .figures import new_figure

__all__ = [
    'Curve', 'compare_runs_figure', 'find_scalar_files', 'read_curves',
    'run_colours'
]

SCALARS = 'scalars.json'
# scalars logged without 'iter' whose step is still the training iteration
# (SpikeMonitorHook's statistics)
ITERATION_PREFIXES = ('spikes/', )
# bookkeeping entries, not curves
_SKIP = {'step', 'iter', 'epoch', 'time', 'data_time', 'memory'}


class Curve:
    """One scalar over its steps; ``axis`` names the step unit."""

    def __init__(self, axis):
        self.axis = axis
        self._points = {}

    def add(self, x, y):
        self._points[x] = y

    @property
    def x(self):
        return np.array(sorted(self._points), dtype=float)

    @property
    def y(self):
        return np.array([self._points[k] for k in sorted(self._points)],
                        dtype=float)

    def __len__(self):
        return len(self._points)


def find_scalar_files(path):
    """``scalars.json`` files of a work dir (or a run dir, or the file)."""
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise DataError('no such work dir or file', path=path)
    direct = osp.join(path, SCALARS)
    if osp.isfile(direct):
        return [direct]
    nested = osp.join(path, 'vis_data', SCALARS)
    if osp.isfile(nested):
        return [nested]
    found = sorted(glob.glob(osp.join(path, '*', 'vis_data', SCALARS)))
    if not found:
        raise DataError(
            f'no */vis_data/{SCALARS} below it; is it a work dir of a run '
            'with LocalVisBackend in visualizer.vis_backends?', path=path)
    return found


def read_curves(path):
    """``{name: Curve}`` of every scalar logged in the run at ``path``."""
    curves = {}
    for file in find_scalar_files(path):
        with open(file) as f:
            for number, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataError(f'line {number} is not JSON ({err})',
                                    path=file) from None
                if 'iter' in record:
                    axis, x = 'iteration', record['iter']
                else:
                    axis, x = 'step', record.get('step', 0)
                for name, value in record.items():
                    if name in _SKIP or not isinstance(
                            value, (int, float)) or isinstance(value, bool):
                        continue
                    kind = 'iteration' if name.startswith(
                        ITERATION_PREFIXES) else axis
                    curves.setdefault(name, Curve(kind)).add(x, value)
    return curves


def _smooth(values, window):
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    head = [values[:i + 1].mean() for i in range(window - 1)]
    return np.concatenate([head, np.convolve(values, kernel, mode='valid')])


def default_keys(runs):
    """``loss`` and every ``accuracy/*`` curve found in any run."""
    names = set()
    for curves in runs.values():
        names.update(curves)
    keys = [k for k in ('loss', ) if k in names]
    keys += sorted(k for k in names if k.startswith('accuracy/'))
    return keys


def run_colours(labels):
    """``{label: colour}``, fixed per run for every panel.

    Matplotlib's colour cycle restarts in each panel, so a run that misses a
    scalar would shift the colours of the runs after it in that panel.
    Up to 10 runs get the default cycle ``C0..C9``; more are spread over
    ``turbo`` so that no two share a colour.
    """
    labels = list(labels)
    if len(labels) <= 10:
        return {label: f'C{i}' for i, label in enumerate(labels)}
    cmap = colormaps['turbo']
    return {label: cmap(i / (len(labels) - 1))
            for i, label in enumerate(labels)}


def compare_runs_figure(runs, keys=None, smooth=1, title=None):
    """One panel per scalar, one line per run, each run in one colour in
    every panel.

    Args:
        runs (dict[str, dict[str, Curve]]): ``{label: read_curves(dir)}``.
        keys (list[str], optional): scalars to plot; default
            :func:`default_keys`.
        smooth (int): moving-average window for iteration curves.
    """
    keys = list(keys) if keys else default_keys(runs)
    if not keys:
        raise ConfigError('the runs hold neither loss nor accuracy curves; '
                          'name the scalars to plot with --keys')
    for key in keys:
        if not any(key in curves for curves in runs.values()):
            available = sorted({k for c in runs.values() for k in c})
            raise ConfigError(f'no run logged {key!r}; available: '
                              f'{available}')
    cols = min(2, len(keys))
    rows = -(-len(keys) // cols)
    fig = new_figure(6 * cols, 3.8 * rows + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    colours = run_colours(runs)
    for ax, key in zip(axes, keys):
        axis = 'step'
        for label, curves in runs.items():
            curve = curves.get(key)
            if curve is None or not len(curve):
                continue
            axis = curve.axis
            y = _smooth(curve.y, smooth) if curve.axis == 'iteration' \
                else curve.y
            ax.plot(curve.x, y, label=label, color=colours[label],
                    marker=None if len(curve) > 30 else 'o', markersize=3)
        ax.set_title(key, fontsize=10)
        ax.set_xlabel(axis if axis == 'iteration' else
                      'validation step (epoch)')
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[len(keys):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
