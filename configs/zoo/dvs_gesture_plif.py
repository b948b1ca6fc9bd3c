# DVS128 Gesture with the PLIF network of Fang et al. (5 conv blocks of 128,
# FC 512, PLIF neurons): T = 20 frames of 128x128.
_base_ = ['../dvs_gesture.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='PLIFNet',
        preset='dvs_gesture',
        in_channels=2,
        input_size=128,
        neuron=dict(type='PLIF')),
    head=dict(
        _delete_=True,
        type='SpikingClsHead',
        in_features=512,
        num_classes=11,
        aggregation='mean',
        loss=dict(type='CrossEntropyLoss')))
num_steps = 20  # T, frames per sample: stated once, used below
_representation = dict(
    type='EventFrames', num_steps=num_steps, split_by='number', size=128)
train_dataloader = dict(dataset=dict(representation=_representation))
val_dataloader = dict(dataset=dict(representation=_representation))
test_dataloader = val_dataloader
