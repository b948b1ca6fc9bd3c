# CIFAR10-DVS with BIDL's clif7fc1cd network (seven Conv2dLif pooled inside
# the layer + one linear readout), T = 10 frames of 128x128, with the
# settings of BIDL's applications/classification/dvs/cifar10dvs/
# vgg_cifar10dvs/clif7fc1cd/clif7fc1cd_itout-b64x1-cifar10dvs.py: analog LIF
# (noise 0) with membrane BatchNorm, random crop with padding 16 and
# horizontal flips (inherited), batch 32, Adam 1e-3 (weight decay 1e-4),
# linear warm-up from 0.1x over 2500 iterations, lr x0.1 at epochs 30 / 60 /
# 90, 100 epochs, label smoothing 0.4 in BIDL's 'classy_vision' mode =
# 0.4 / 1.4 in torch's convention.
_base_ = [
    '../_base_/models/clif7fc1_dvs.py',
    '../_base_/datasets/cifar10_dvs.py',
    '../_base_/schedules/adam_warmup_multistep_100e.py',
    '../_base_/default_runtime.py',
]
model = dict(
    backbone=dict(neuron=dict(mode='analog')),
    head=dict(num_classes=10,
              loss=dict(type='CrossEntropyLoss', label_smoothing=0.4 / 1.4)))
optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-3, weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=2500),
    dict(type='MultiStepLR', by_epoch=True, milestones=[30, 60, 90],
         gamma=0.1)
]
train_dataloader = dict(batch_size=32)
val_dataloader = dict(batch_size=32)
test_dataloader = val_dataloader
