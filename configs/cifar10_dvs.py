# CIFAR10-DVS with BIDL's clif5fc2cd network: T = 10 frames of 128x128,
# Adam 0.01 with warm-up, lr steps at 30 / 60 / 90, 100 epochs, batch 64,
# label smoothing 0.1.
_base_ = [
    '_base_/models/clif5fc2_cifar10dvs.py',
    '_base_/datasets/cifar10_dvs.py',
    '_base_/schedules/adam_warmup_multistep_100e.py',
    '_base_/default_runtime.py',
]
