"""Seed every random generator from (seed, epoch) at the start of each epoch.

mmengine seeds the generators once, when the Runner starts, and does not
save their states. A run resumed from the checkpoint of epoch k therefore
draws different dropout masks, neuron noise and augmentations in epoch k+1
than the uninterrupted run did. Re-seeding at every epoch start from the
run's seed and the epoch number makes each epoch's random stream independent
of the history, so killing and resuming at an epoch boundary reproduces the
uninterrupted run bit for bit (on CPU, with ``--deterministic``).
"""
import random

import numpy as np
import torch
from mmengine.hooks import Hook

from bidl_train.registry import HOOKS


def epoch_seed(seed, epoch):
    """A 32-bit seed mixing the run seed and the epoch (SplitMix-style)."""
    x = (int(seed) * 0x9E3779B97F4A7C15 + int(epoch) + 1) & (2**64 - 1)
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & (2**64 - 1)
    return (x ^ (x >> 31)) & 0xFFFFFFFF


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Re-seed python, numpy and torch (all devices) before each epoch."""
    priority = 'VERY_HIGH'

    def before_train_epoch(self, runner):
        seed = epoch_seed(runner.seed, runner.epoch)
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)  # seeds CUDA generators too
