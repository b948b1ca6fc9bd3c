# BIDL's ResNetLif-18 for video (Jester): ImageNet stem, analog LIF with
# noise 1e-3, global average pooling, linear readout; label smoothing 0.1.
model = dict(
    type='SpikingClassifier',
    backbone=dict(
        type='ResNetLif',
        depth=18,
        in_channels=3,
        stem='imagenet',
        neuron=dict(type='LIF', mode='analog', noise=1e-3)),
    head=dict(
        type='SpikingClsHead',
        in_features=512,
        num_classes=27,
        aggregation='mean',
        loss=dict(type='CrossEntropyLoss', label_smoothing=0.1)))
