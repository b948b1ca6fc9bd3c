# CIFAR10-DVS with the PLIF network of Fang et al. (4 conv blocks of 128, FC
# 512, PLIF neurons): T = 20 frames of 128x128.
_base_ = ['../cifar10_dvs.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='PLIFNet',
        preset='cifar10_dvs',
        in_channels=2,
        input_size=128,
        neuron=dict(type='PLIF')),
    head=dict(
        _delete_=True,
        type='SpikingClsHead',
        in_features=512,
        num_classes=10,
        aggregation='mean',
        loss=dict(type='CrossEntropyLoss', label_smoothing=0.1)))
num_steps = 20  # T, frames per sample: stated once, used below
_representation = dict(
    type='EventFrames', num_steps=num_steps, split_by='number')
train_dataloader = dict(dataset=dict(representation=_representation))
val_dataloader = dict(dataset=dict(representation=_representation))
test_dataloader = val_dataloader
