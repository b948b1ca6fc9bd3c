"""Stop training at the first non-finite loss.

A NaN or Inf loss poisons the weights at the next optimizer step and every
checkpoint written afterwards. This hook checks the loss of every training
iteration and stops the run with a message naming the epoch and iteration,
before any later checkpoint is written, so the last checkpoint on disk is the
last good one. It runs above the checkpoint hook's priority for that reason.
"""
import math

import torch
from mmengine.hooks import Hook

from bidl_train.errors import BidlError
from bidl_train.registry import HOOKS


class NonFiniteLossError(BidlError):
    """Training produced a NaN/Inf loss."""


@HOOKS.register_module()
class NanGuardHook(Hook):
    """Raise :class:`NonFiniteLossError` when a training loss is not finite.

    Args:
        check_all_losses (bool): also check every ``loss*`` entry of the
            model's output, not only the total.
    """
    priority = 'ABOVE_NORMAL'

    def __init__(self, check_all_losses=True):
        self.check_all_losses = check_all_losses

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if not outputs:
            return
        keys = [k for k in outputs if k.startswith('loss')
                ] if self.check_all_losses else ['loss']
        for key in keys:
            value = outputs.get(key)
            if value is None:
                continue
            value = float(value.detach()) if isinstance(
                value, torch.Tensor) else float(value)
            if not math.isfinite(value):
                last = _last_checkpoint(runner.work_dir)
                kept = (f'the last good checkpoint is {last}'
                        if last else 'no checkpoint had been written yet')
                raise NonFiniteLossError(
                    f'{key} became {value} at epoch {runner.epoch + 1}, '
                    f'iteration {runner.iter + 1} (batch {batch_idx + 1} of '
                    f'the epoch); training stopped and {kept}. Lower the '
                    'learning rate, enable gradient clipping '
                    '(optim_wrapper.clip_grad=dict(max_norm=...)) or check '
                    'the inputs of that batch.')


def _last_checkpoint(work_dir):
    import os.path as osp
    marker = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(marker):
        with open(marker) as f:
            return f.read().strip() or None
    return None
