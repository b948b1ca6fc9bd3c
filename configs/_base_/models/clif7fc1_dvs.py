# BIDL's SeqClif7Fc1: seven Conv2dLif 64/64/128/128/256/256/512, each pooled
# by 2 (128 -> 1), then one linear readout (the head).
model = dict(
    type='SpikingClassifier',
    backbone=dict(
        type='ConvLifNet',
        in_channels=2,
        input_size=128,
        channels=(64, 64, 128, 128, 256, 256, 512),
        pools=(2, 2, 2, 2, 2, 2, 2),
        fc=(),
        neuron=dict(type='LIF')),
    head=dict(
        type='SpikingClsHead',
        in_features=512,
        num_classes=11,
        aggregation='mean',
        loss=dict(type='CrossEntropyLoss')))
