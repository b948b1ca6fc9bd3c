# DVS128 Gesture at full 128x128 resolution with BIDL's clif7fc1dg network
# (seven pooled Conv2dLif + one linear readout), T = 16 frames, with the
# settings of BIDL's applications/classification/dvs/dvs_gesture/clif7fc1dg/
# clif7fc1dg_itout-b16x1-dvsgesture.py: spiking LIF (noise 0) with membrane
# BatchNorm, random crop with padding 4 (inherited), batch 16, Adam 1e-3
# with weight decay 1e-3, linear warm-up from 0.01x over 100 iterations, lr
# x0.1 at epochs 30 / 60 / 90, 100 epochs, label smoothing 0.3 in BIDL's
# 'classy_vision' mode = 0.3 / 1.3 in torch's convention.
_base_ = [
    '../_base_/models/clif7fc1_dvs.py',
    '../_base_/datasets/dvs128_gesture.py',
    '../_base_/schedules/adam_multistep_100e.py',
    '../_base_/default_runtime.py',
]
model = dict(
    head=dict(loss=dict(type='CrossEntropyLoss', label_smoothing=0.3 / 1.3)))
optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-3, weight_decay=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='MultiStepLR', by_epoch=True, milestones=[30, 60, 90],
         gamma=0.1)
]
num_steps = 16  # T, frames per sample: stated once, used below
_representation = dict(
    type='EventFrames', num_steps=num_steps, split_by='number', size=128)
train_dataloader = dict(dataset=dict(representation=_representation))
val_dataloader = dict(dataset=dict(representation=_representation))
test_dataloader = val_dataloader
