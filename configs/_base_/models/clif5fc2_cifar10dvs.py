# BIDL's SeqClif5Fc2Cd (analog LIF = LIAF convs): conv 5x5/2 32, then 3x3
# 64/128/256/512, every conv pooled by 2 (128 -> 2), Linear 2048 -> 512 +
# ReLU, the head's readout to 10; label smoothing 0.1.
model = dict(
    type='SpikingClassifier',
    backbone=dict(
        type='ConvLifNet',
        in_channels=2,
        input_size=128,
        channels=(32, 64, 128, 256, 512),
        pools=(2, 2, 2, 2, 2),
        kernel_size=(5, 3, 3, 3, 3),
        strides=(2, 1, 1, 1, 1),
        fc=(512, ),
        fc_type='relu',
        neuron=dict(type='LIF', mode='analog')),
    head=dict(
        type='SpikingClsHead',
        in_features=512,
        num_classes=10,
        aggregation='mean',
        loss=dict(type='CrossEntropyLoss', label_smoothing=0.1)))
