# CIFAR10-DVS with ResNetLif-34:
# T = 10 frames of 128x128, ImageNet stem, analog LIF (BIDL's resnetlif
# CIFAR10-DVS settings), the CIFAR10-DVS task schedule.
_base_ = ['../cifar10_dvs.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNetLif',
        depth=34,
        in_channels=2,
        stem='imagenet',
        lite=False,
        neuron=dict(type='LIF', mode='analog')),
    head=dict(
        type='SpikingClsHead',
        in_features=512,
        num_classes=10,
        aggregation='mean',
        loss=dict(type='CrossEntropyLoss', label_smoothing=0.1)))
_representation = dict(type='EventFrames', T=10, split_by='number')
train_dataloader = dict(dataset=dict(representation=_representation))
val_dataloader = dict(dataset=dict(representation=_representation))
test_dataloader = val_dataloader
_input_shape = (10, 2, 128, 128)
