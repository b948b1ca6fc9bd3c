# BIDL's SeqClif3Fc3 (DVS-MNIST, Luna16Cls): analog Conv2dLif 32/64/128,
# each pooled by 2, Linear 512 + ReLU, Linear 128 + ReLU, the head's
# readout. Leaf configs set in_channels, input_size and the classes.
model = dict(
    type='SpikingClassifier',
    backbone=dict(
        type='ConvLifNet',
        in_channels=2,
        input_size=40,
        channels=(32, 64, 128),
        pools=(2, 2, 2),
        fc=(512, 128),
        fc_type='relu',
        neuron=dict(type='LIF', mode='analog')),
    head=dict(
        type='SpikingClsHead',
        in_features=128,
        num_classes=10,
        aggregation='mean',
        loss=dict(type='CrossEntropyLoss')))
