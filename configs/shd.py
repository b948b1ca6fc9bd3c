# Spiking Heidelberg Digits: [T=100, 2, 1, 700] spike-count bins through two
# FcLif layers of 256 (a recurrent-free baseline), Adam with cosine decay.
_base_ = [
    '_base_/datasets/shd.py',
    '_base_/schedules/adam_cosine.py',
    '_base_/default_runtime.py',
]
model = dict(
    type='SpikingClassifier',
    backbone=dict(
        type='ConvLifNet',
        in_channels=2,
        input_size=(1, 700),
        channels=(),
        pools=(),
        fc=(256, 256),
        neuron=dict(type='LIF')),
    head=dict(
        type='SpikingClsHead',
        in_features=256,
        num_classes=20,
        aggregation='mean',
        loss=dict(type='CrossEntropyLoss')))
train_cfg = dict(max_epochs=50)
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, T_max=50, eta_min=1e-5)
]
