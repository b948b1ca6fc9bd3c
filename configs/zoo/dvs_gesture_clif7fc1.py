# DVS128 Gesture at full 128x128 resolution with BIDL's clif7fc1dg network
# (seven pooled Conv2dLif + one linear readout), T = 16 frames.
_base_ = [
    '../_base_/models/clif7fc1_dvs.py',
    '../_base_/datasets/dvs128_gesture.py',
    '../_base_/schedules/adam_multistep_100e.py',
    '../_base_/default_runtime.py',
]
_representation = dict(type='EventFrames', T=16, split_by='number', size=128)
train_dataloader = dict(dataset=dict(representation=_representation))
val_dataloader = dict(dataset=dict(representation=_representation))
test_dataloader = val_dataloader
