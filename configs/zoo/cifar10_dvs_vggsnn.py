# CIFAR10-DVS with the 9-conv VGG-style Conv-LIF net ("VGGSNN") at 48x48,
# T = 10, global average pooling and a linear readout.
_base_ = ['../cifar10_dvs.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='VGGLif',
        arch='vggsnn',
        in_channels=2,
        input_size=48,
        neuron=dict(type='LIF')),
    head=dict(
        _delete_=True,
        type='SpikingClsHead',
        in_features=512,
        num_classes=10,
        aggregation='mean',
        loss=dict(type='CrossEntropyLoss', label_smoothing=0.1)))
num_steps = 10  # T, frames per sample: stated once, used below
_representation = dict(
    type='EventFrames', num_steps=num_steps, split_by='number', size=48)
# the task's augmentation (BIDL's crop with padding 16 at 128x128, flips),
# the padding scaled to 48x48
train_dataloader = dict(
    dataset=dict(
        representation=_representation,
        pipeline=[
            dict(type='RandomCropPad', padding=6),
            dict(type='RandomFlipFrames', prob=0.5),
        ]))
val_dataloader = dict(dataset=dict(representation=_representation))
test_dataloader = val_dataloader
