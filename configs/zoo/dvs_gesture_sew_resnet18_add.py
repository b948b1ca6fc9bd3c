# DVS128 Gesture with SEW-ResNet-18 (connect function ADD): T = 16 frames of
# 64x64, ImageNet stem, spiking LIF.
_base_ = ['../dvs_gesture.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='SEWResNet',
        depth=18,
        in_channels=2,
        cnf='ADD',
        stem='imagenet',
        neuron=dict(type='LIF')),
    head=dict(
        _delete_=True,
        type='SpikingClsHead',
        in_features=512,
        num_classes=11,
        aggregation='mean',
        loss=dict(type='CrossEntropyLoss')))
num_steps = 16  # T, frames per sample: stated once, used below
_representation = dict(
    type='EventFrames', num_steps=num_steps, split_by='number', size=64)
train_dataloader = dict(dataset=dict(representation=_representation))
val_dataloader = dict(dataset=dict(representation=_representation))
test_dataloader = val_dataloader
_input_shape = (num_steps, 2, 64, 64)
