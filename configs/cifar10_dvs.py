# CIFAR10-DVS with BIDL's clif5fc2cd network (applications/classification/
# dvs/cifar10dvs/vgg_cifar10dvs/clif5fc2cd/clif5fc2cd_itout-b64x1-
# cifar10dvs.py): T = 10 frames of 128x128, analog LIF (noise 0) with
# membrane BatchNorm, max pool after each layer, Adam 0.01 (weight decay
# 1e-4) with warm-up, lr steps at 30 / 60 / 90, 100 epochs, batch 64, BIDL's
# label smoothing 0.1 (0.1 / 1.1 in torch's convention), random crop with
# padding 16 and horizontal flips.
_base_ = [
    '_base_/models/clif5fc2_cifar10dvs.py',
    '_base_/datasets/cifar10_dvs.py',
    '_base_/schedules/adam_warmup_multistep_100e.py',
    '_base_/default_runtime.py',
]
