"""Log what the spiking layers do, to TensorBoard and the other vis backends.

Add to a config::

    custom_hooks = [dict(type='SpikeMonitorHook', interval=50)]

What is logged (choose with ``log=(...)``; all by default):

``'rate'``, ``'silent'``, ``'saturated'``
    every ``interval`` training iterations, per neuron layer, scalars
    ``spikes/rate/<layer>``, ``spikes/silent/<layer>`` and
    ``spikes/saturated/<layer>`` (fractions of neurons that never fire /
    fire at every step over that batch; see
    :mod:`bidl_train.visualization.spikes`), plus ``.../mean`` over layers.
    Observed on the training forward itself through forward hooks, no extra
    computation.
``'raster'``, ``'rate_over_time'``, ``'membrane'``
    at every ``render_interval``-th validation and the last one of the
    training (drawing them costs a forward pass and matplotlib's
    rendering, which took half the demo's time when done at every
    epoch), for validation sample ``sample_index``: the spike
    raster image ``spike_raster``, the per-step firing-rate plot
    ``spike_rate_over_time``, and the membrane state of every neuron layer
    as TensorBoard histograms ``membrane/<layer>/<state>`` (backends without
    histograms get the image ``membrane_histogram`` only).
``'confusion'``
    with the images above, the confusion matrix image ``confusion_matrix``
    (needs the ``Accuracy`` metric in ``val_evaluator``).

Images are stamped with the epoch (by-epoch training) or the iteration.
"""
import contextlib

import numpy as np
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from bidl_train.errors import ConfigError
from bidl_train.registry import HOOKS
from bidl_train.visualization.figures import (confusion_figure,
                                              histograms_figure,
                                              raster_figure,
                                              rates_over_time_figure, to_rgb)
from bidl_train.visualization.observe import observe_batch
from bidl_train.visualization.recording import observe_spike_stats

TRAIN_ITEMS = ('rate', 'silent', 'saturated')
VAL_SAMPLE_ITEMS = ('raster', 'rate_over_time', 'membrane')
LOG_ITEMS = TRAIN_ITEMS + VAL_SAMPLE_ITEMS + ('confusion', )


def unwrap(model):
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class SpikeMonitorHook(Hook):
    """Per-layer spike statistics, rasters, membranes and confusion images.

    Args:
        interval (int): training iterations between two statistics records.
        log (tuple[str]): which items to log, from ``LOG_ITEMS``.
        sample_index (int): index of the validation sample to draw.
        max_neurons (int): neurons per layer shown in the raster (evenly
            spaced).
        histogram_bins (int): bins of the membrane histograms.
        render_interval (int): draw the validation images at every
            ``render_interval``-th validation (and always at the last
            validation of the training, and when validating without
            training); 1 draws them every time.
    """
    priority = 'LOW'

    def __init__(self, interval=50, log=LOG_ITEMS, sample_index=0,
                 max_neurons=64, histogram_bins=50, render_interval=5):
        if not isinstance(interval, int) or isinstance(
                interval, bool) or interval < 1:
            raise ConfigError(
                f'SpikeMonitorHook.interval must be a positive int, got '
                f'{interval!r}')
        if isinstance(log, str):
            log = (log, )
        unknown = sorted(set(log) - set(LOG_ITEMS))
        if unknown:
            raise ConfigError(
                f'SpikeMonitorHook.log has unknown items {unknown}; choose '
                f'from {list(LOG_ITEMS)}')
        if not isinstance(sample_index, int) or sample_index < 0:
            raise ConfigError('SpikeMonitorHook.sample_index must be an int '
                              f'>= 0, got {sample_index!r}')
        if not isinstance(max_neurons, int) or max_neurons < 1:
            raise ConfigError('SpikeMonitorHook.max_neurons must be a '
                              f'positive int, got {max_neurons!r}')
        if not isinstance(render_interval, int) or isinstance(
                render_interval, bool) or render_interval < 1:
            raise ConfigError(
                'SpikeMonitorHook.render_interval must be a positive int '
                f'(validations between two image renders), got '
                f'{render_interval!r}')
        self.interval = interval
        self.render_interval = render_interval
        self._validations = 0  # validations seen (the render counter)
        self.log = tuple(log)
        self.sample_index = sample_index
        self.max_neurons = max_neurons
        self.histogram_bins = histogram_bins
        self._observing = None  # (ExitStack, stats dict) of this iteration

    # ------------------------------------------------------------------
    # training: statistics of the training forward
    # ------------------------------------------------------------------
    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if not set(TRAIN_ITEMS) & set(self.log):
            return
        if not self.every_n_train_iters(runner, self.interval):
            return
        stack = contextlib.ExitStack()
        stats = stack.enter_context(observe_spike_stats(unwrap(runner.model)))
        self._observing = (stack, stats)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if self._observing is None:
            return
        stack, stats = self._observing
        self._observing = None
        stack.close()
        if runner.rank != 0 or not stats:
            return
        runner.visualizer.add_scalars(
            self.stats_scalars(stats), step=runner.iter + 1)

    def stats_scalars(self, stats):
        """``{tag: value}`` for the chosen items of ``{layer: stats}``."""
        scalars = {}
        for item in TRAIN_ITEMS:
            if item not in self.log:
                continue
            values = {name: getattr(s, item) for name, s in stats.items()}
            if item == 'saturated':  # analog layers have no saturation
                values = {k: v for k, v in values.items() if v == v}
            for name, value in values.items():
                scalars[f'spikes/{item}/{name}'] = value
            if values:
                scalars[f'spikes/{item}/mean'] = sum(values.values()) / len(
                    values)
        return scalars

    # ------------------------------------------------------------------
    # validation: one sample's spikes and membranes, the confusion matrix
    # ------------------------------------------------------------------
    def after_val_epoch(self, runner, metrics=None):
        if runner.rank != 0:
            return
        self._validations += 1
        if not self._renders_now(runner):
            return
        step = self._image_step(runner)
        if 'confusion' in self.log and metrics:
            confusion = _find_metric(metrics, 'confusion_matrix')
            if confusion is not None:
                runner.visualizer.add_image(
                    'confusion_matrix',
                    to_rgb(confusion_figure(confusion,
                                            _class_names(runner))),
                    step=step)
        if set(VAL_SAMPLE_ITEMS) & set(self.log):
            self._log_sample(runner, step)

    def _renders_now(self, runner):
        """Every ``render_interval``-th validation, the training's last
        one, and any validation outside training."""
        if self._validations % self.render_interval == 0:
            return True
        loop = getattr(runner, '_train_loop', None)
        if loop is None or isinstance(loop, dict):
            return True  # validation or test without training
        if hasattr(loop, 'max_epochs'):
            return runner.epoch >= loop.max_epochs
        return runner.iter >= loop.max_iters

    def _image_step(self, runner):
        train_loop = getattr(runner, '_train_loop', None)
        by_epoch = train_loop is None or isinstance(train_loop, dict) or \
            hasattr(train_loop, 'max_epochs')
        return runner.epoch if by_epoch else runner.iter

    def _log_sample(self, runner, step):
        loader = runner.val_dataloader
        dataset = loader.dataset
        if self.sample_index >= len(dataset):
            raise ConfigError(
                f'SpikeMonitorHook.sample_index={self.sample_index} but the '
                f'validation set has {len(dataset)} samples')
        batch = loader.collate_fn([dataset[self.sample_index]])
        want_membrane = 'membrane' in self.log
        seen = observe_batch(unwrap(runner.model), batch,
                             membrane=want_membrane)
        if not seen.spikes:
            return
        label = _label_of(batch)
        pred = int(seen.logits[0].argmax())
        names = _class_names(runner)
        title = (f'validation sample {self.sample_index}: true '
                 f'{_name(label, names)}, predicted {_name(pred, names)}')
        vis = runner.visualizer
        if 'raster' in self.log:
            vis.add_image('spike_raster', to_rgb(raster_figure(
                seen.rasters(0, self.max_neurons), title)), step=step)
        if 'rate_over_time' in self.log:
            vis.add_image('spike_rate_over_time', to_rgb(
                rates_over_time_figure(seen.rates_over_time(0), title)),
                step=step)
        if want_membrane and seen.membranes:
            values = {f'{layer}/{state}': tensor.flatten().numpy()
                      for layer, states in seen.membranes.items()
                      for state, tensor in states.items()}
            # a diverging run has NaN/Inf membranes: plot the finite part
            # and let the NaN guard, not a histogram, stop the run
            values = {tag: data[np.isfinite(data)]
                      for tag, data in values.items()}
            values = {tag: data for tag, data in values.items() if data.size}
            if not values:
                runner.logger.warning(
                    'SpikeMonitorHook: every membrane value is NaN/Inf; '
                    'no histogram logged')
                return
            for backend in _backends(vis):
                writer = getattr(backend, 'experiment', None)
                if hasattr(writer, 'add_histogram'):
                    for tag, data in values.items():
                        writer.add_histogram(f'membrane/{tag}', data, step,
                                             bins=self.histogram_bins)
            vis.add_image('membrane_histogram', to_rgb(histograms_figure(
                values, self.histogram_bins, 'membrane state', title,
                thresholds=seen.thresholds)), step=step)


def _backends(visualizer):
    """The visualizer's backends (mmengine keeps them in a private dict and
    offers only lookup by name)."""
    return list(getattr(visualizer, '_vis_backends', {}).values())


def _find_metric(metrics, key):
    for name, value in metrics.items():
        if name == key or name.endswith('/' + key):
            return value
    return None


def _class_names(runner):
    try:
        meta = runner.val_dataloader.dataset.metainfo
    except (AttributeError, TypeError):
        return None
    return (meta or {}).get('classes')


def _label_of(batch):
    label = batch.get('label') if isinstance(batch, dict) else None
    if label is None:
        return None
    return int(label[0]) if hasattr(label, '__getitem__') else int(label)


def _name(index, names):
    if index is None:
        return '?'
    if names and 0 <= index < len(names):
        return f'{index} ({names[index]})'
    return str(index)
