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
    Observed on the training forward itself through forward hooks (no extra
    forward); a spiking layer's output costs one sum over time and batch
    (see :func:`layer_stats`; other spike sources two passes more to check
    that their values are 0/1), and the numbers are read with one host sync
    at the end of the iteration. Measured on the demo config
    (``configs/demo/synthetic_gesture.py``, batch 16, CPU, one thread, CPU
    time, paired medians of 100 interleaved train steps on a loaded
    machine): a recorded iteration costs 3-4 ms more than a plain one
    (about 5 %; it was 15-16 ms, 24 %, with the per-neuron statistics of
    the former ``visualization.spikes.layer_spike_stats``).
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
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from bidl_train.errors import ConfigError
from bidl_train.models.monitor import hooked_spike_sources
from bidl_train.neurons.base import BaseNeuron
from bidl_train.registry import HOOKS
from bidl_train.visualization.figures import (confusion_figure,
                                              histograms_figure,
                                              raster_figure,
                                              rates_over_time_figure, to_rgb)
from bidl_train.visualization.observe import observe_batch
from bidl_train.visualization.spikes import LayerSpikeStats

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
        sums = stack.enter_context(observe_layer_stats(unwrap(runner.model)))
        self._observing = (stack, sums)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if self._observing is None:
            return
        stack, sums = self._observing
        self._observing = None
        stack.close()
        if runner.rank != 0 or not sums:
            return
        stats = read_layer_stats(sums)
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


# ----------------------------------------------------------------------
# per-layer statistics of the training forward
# ----------------------------------------------------------------------
@contextlib.contextmanager
def observe_layer_stats(model):
    """Yield ``{layer: [sum of stat tensors, calls, neurons, binary]}``,
    filled during the block by forward hooks on every spike source (the
    layers :func:`~bidl_train.models.monitor.hooked_spike_sources` hooks);
    :func:`read_layer_stats` turns it into ``LayerSpikeStats``. A layer
    called several times in one forward gets the mean of its calls."""
    sums = {}

    def make_hook(name):

        def hook(module, args, output):
            out = output[0] if isinstance(output, tuple) else output
            if out.dim() < 3 or out.numel() == 0:
                return  # not a [T, B, neurons...] output: nothing to count
            values, neurons, binary = layer_stats(
                out, binary=True if _emits_spikes(module) else None)
            if name in sums:
                entry = sums[name]
                entry[0] = entry[0] + values
                entry[1] += 1
                entry[3] = entry[3] and binary
            else:
                sums[name] = [values, 1, neurons, binary]

        return hook

    with hooked_spike_sources(model, make_hook):
        yield sums


def read_layer_stats(sums):
    """``{layer: LayerSpikeStats}`` from :func:`observe_layer_stats`'s
    sums, read with one host transfer per device."""
    names = list(sums)
    by_device = {}
    for name in names:
        by_device.setdefault(sums[name][0].device, []).append(name)
    stats = {}
    for members in by_device.values():
        rows = torch.stack([sums[name][0] / sums[name][1]
                            for name in members]).cpu().tolist()
        for name, (rate, silent, saturated) in zip(members, rows):
            _, _, neurons, binary = sums[name]
            stats[name] = LayerSpikeStats(rate=rate, silent=silent,
                                          saturated=saturated,
                                          neurons=neurons, binary=binary)
    return {name: stats[name] for name in names}


def layer_stats(output, binary=None):
    """``(tensor [rate, silent, saturated], neurons, binary)`` of one
    ``[T, B, neurons...]`` output, with the definitions of
    :mod:`bidl_train.visualization.spikes` (saturated is
    NaN for a non-binary output), in one pass over the output for spikes
    (about ten before).

    For spikes (0/1) one sum over time and batch gives every neuron's spike
    count, and the count says it all: rate = total / (steps * neurons),
    silent = count 0, saturated = count ``steps``. ``binary=True`` says the
    output is spikes (the hook passes it for a neuron in spike mode, whose
    output is ``H(u - theta)``, 0 or 1 by construction); ``None`` decides
    from the values, with two more passes (exact, see :func:`_is_binary`).
    """
    flat = output.detach().flatten(2)  # [T, B, N], a view
    if not flat.is_floating_point():
        flat = flat.float()
    steps, neurons = flat.shape[0] * flat.shape[1], flat.shape[2]
    if binary is None:
        binary = _is_binary(flat)
    if binary:
        # sums of 0/1 in float32 are exact integers up to 2**24 steps
        counts = flat.sum((0, 1), dtype=torch.float32)  # [N]
        per_neuron = torch.stack([
            counts.sum(dtype=torch.float64) / steps,
            (counts == 0).sum(dtype=torch.float64),
            (counts == steps).sum(dtype=torch.float64)])
    else:
        # analog (LIAF) values: silent means |output| sums to 0 over time
        # and batch, where values of either sign cannot cancel
        active = flat.abs().sum((0, 1), dtype=torch.float32)
        silent = (active == 0).sum(dtype=torch.float64)
        per_neuron = torch.stack([
            flat.mean(dtype=torch.float32).double() * neurons, silent,
            torch.full_like(silent, float('nan'))])
    return per_neuron / neurons, neurons, binary


def _emits_spikes(module):
    """Whether ``module`` is a neuron in spike mode: its output is the
    Heaviside step of the membrane, 0 or 1 (NaN membranes give 0). Other
    spike sources (plastic layers, analog neurons, Izhikevich) are checked
    on their values."""
    return isinstance(module, BaseNeuron) and \
        getattr(module, 'mode', None) == 'spike'


def _is_binary(flat):
    """Whether every entry of ``flat`` is 0 or 1, with one host sync.

    ``x - x*x`` (one fused ``addcmul``) is exactly 0 for ``x`` in {0, 1}
    and for no other float: for ``x`` next to 1 the product ``x*x`` lands
    on a different float than ``x``, a tiny ``x`` gives ``x``, NaN and Inf
    give NaN. So the output is binary exactly when that tensor's minimum
    and maximum are both 0 (``aminmax``: one pass for both).
    """
    low, high = torch.aminmax(torch.addcmul(flat, flat, flat, value=-1))
    return low.item() == 0 and high.item() == 0


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
