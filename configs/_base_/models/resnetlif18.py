# BIDL's ResNetLifItout depth 18 (applications/classification/video/jester/
# resnetlif18_t16/backbone.py) with the Jester / ES-ImageNet options
# (resnetlif18-itout-b20x4-16-jester.py, resnetlif18-itout-b64x4-
# esimagenet.py): ImageNet stem (7x7/2 conv, BN, LIF, 3x3/2 max pool),
# analog LIF (cmode='analog') with noise 1e-3, no membrane BatchNorm (BIDL's
# Lif2d defaults to norm_state=False), global average pooling, linear
# readout of the time-averaged features. BIDL's projection shortcut
# (_make_layer: AvgPool2d(stride, ceil_mode=True), stride-1 1x1 conv, BN) and
# its biased convs (every nn.Conv2d keeps bias=True before its BN).
# Loss: BIDL's LabelSmoothLoss(label_smooth_val=0.1) in its default
# 'classy_vision' mode (losses/label_smooth_loss.py) smooths by
# 0.1 / (1 + 0.1) in torch's convention.
# BIDL trains it in its outer-loop form (..-itout-..): every BatchNorm
# normalises one time step over the batch and updates its running statistics
# T times per batch (norm_stats='per_step'; measured in docs/bidl_configs.md).
model = dict(
    type='SpikingClassifier',
    backbone=dict(
        type='ResNetLif',
        depth=18,
        in_channels=3,
        stem='imagenet',
        shortcut='avgpool_conv',
        conv_bias=True,
        neuron=dict(type='LIF', mode='analog', noise=1e-3),
        norm_stats='per_step'),
    head=dict(
        type='SpikingClsHead',
        in_features=512,
        num_classes=27,
        aggregation='mean',
        loss=dict(type='CrossEntropyLoss', label_smoothing=0.1 / 1.1)))
