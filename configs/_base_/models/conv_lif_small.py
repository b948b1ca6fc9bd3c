# A small BIDL-style Conv-LIF network for 2-channel 32x32 event frames.
# Stride-2 convolutions instead of max pooling keep it inside NIR's exact
# subset (LIF, hard reset, beta = 0, v0 = 0, BatchNorm folded into the
# convs), so the same checkpoint deploys to TorchScript, ONNX and NIR.
model = dict(
    type='SpikingClassifier',
    backbone=dict(
        type='ConvLifNet',
        in_channels=2,
        input_size=32,
        channels=(16, 32, 32),
        strides=(2, 2, 2),
        pools=(None, None, None),
        fc=(128, ),
        neuron=dict(type='LIF', alpha=0.3, theta=0.5)),
    head=dict(
        type='SpikingClsHead',
        in_features=128,
        num_classes=4,
        aggregation='mean'))
