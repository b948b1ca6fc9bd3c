"""Save spike raster plots of the test samples the model gets wrong.

``bidl-test CONFIG CKPT --show-dir DIR`` adds this hook; a config may add it
too::

    custom_hooks = [dict(type='MisclassifiedRasterHook', out_dir='rasters')]

During testing it keeps the inputs of up to ``max_samples`` misclassified
samples (on the main process); after testing it runs each of them through
the model once more with every neuron layer recorded and writes
``<out_dir>/sample<index>_true-<class>_pred-<class>.png``. ``index`` counts
the samples in the order the test loader yields them (the dataset index for
a non-shuffled, single-process test).
"""
import os
import os.path as osp
import re

from mmengine.hooks import Hook

from bidl_train.errors import ConfigError
from bidl_train.registry import HOOKS
from bidl_train.visualization.figures import raster_figure, save_png
from bidl_train.visualization.observe import observe_batch, slice_batch

from .spike_monitor import unwrap


@HOOKS.register_module()
class MisclassifiedRasterHook(Hook):
    """Raster plots of misclassified test samples.

    Args:
        out_dir (str): folder for the PNG files (relative paths are taken
            under the work dir).
        max_samples (int): at most this many plots.
        max_neurons (int): neurons per layer shown (evenly spaced).
    """
    priority = 'LOW'

    def __init__(self, out_dir, max_samples=50, max_neurons=64):
        if not out_dir:
            raise ConfigError('MisclassifiedRasterHook.out_dir is empty')
        if not isinstance(max_samples, int) or max_samples < 1:
            raise ConfigError('MisclassifiedRasterHook.max_samples must be a '
                              f'positive int, got {max_samples!r}')
        self.out_dir = out_dir
        self.max_samples = max_samples
        self.max_neurons = max_neurons
        self.saved = []
        self._kept = []  # (index, true, predicted, one-sample batch)
        self._seen = 0

    def before_test_epoch(self, runner):
        self._kept, self._seen, self.saved = [], 0, []

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None):
        outputs = outputs or []
        for i, result in enumerate(outputs):
            index = self._seen + i
            if len(self._kept) >= self.max_samples:
                break
            true, pred = result.get('gt_label'), result.get('pred_label')
            if true is None or pred is None or true == pred:
                continue
            self._kept.append((index, int(true), int(pred),
                               slice_batch(data_batch, i, i + 1)))
        self._seen += len(outputs)

    def after_test_epoch(self, runner, metrics=None):
        if runner.rank != 0:
            return
        out_dir = self.out_dir if osp.isabs(self.out_dir) else osp.join(
            runner.work_dir, self.out_dir)
        os.makedirs(out_dir, exist_ok=True)
        names = _class_names(runner)
        model = unwrap(runner.model)
        for index, true, pred, batch in self._kept:
            seen = observe_batch(model, batch)
            if not seen.spikes:
                continue
            title = (f'test sample {index}: true {_label(true, names)}, '
                     f'predicted {_label(pred, names)}')
            path = osp.join(
                out_dir, f'sample{index:05d}_true-{_slug(true, names)}_pred-'
                f'{_slug(pred, names)}.png')
            self.saved.append(save_png(
                raster_figure(seen.rasters(0, self.max_neurons), title),
                path))
        runner.logger.info(
            f'{len(self.saved)} raster plots of misclassified samples '
            f'written to {out_dir}')
        self._kept = []


def _class_names(runner):
    try:
        meta = runner.test_dataloader.dataset.metainfo
    except (AttributeError, TypeError):
        return None
    return (meta or {}).get('classes')


def _label(index, names):
    if names and index < len(names):
        return f'{index} ({names[index]})'
    return str(index)


def _slug(index, names):
    if names and index < len(names):
        text = re.sub(r'[^A-Za-z0-9]+', '-', str(names[index])).strip('-')
        return f'{index}-{text}' if text else str(index)
    return str(index)
