# BIDL's SeqClif3Flif2Dg: input BatchNorm, three Conv2dLif 64/128/256 with
# stride 2 (40 -> 5), FcLif 256, then the head's per-step linear readout
# (BIDL's last FcLif to 11) and the mean over time.
model = dict(
    type='SpikingClassifier',
    backbone=dict(
        type='ConvLifNet',
        in_channels=2,
        input_size=40,
        channels=(64, 128, 256),
        pools=(None, None, None),
        strides=2,
        input_norm=True,
        fc=(256, ),
        neuron=dict(type='LIF')),
    head=dict(
        type='SpikingClsHead',
        in_features=256,
        num_classes=11,
        aggregation='mean',
        loss=dict(type='CrossEntropyLoss')))
