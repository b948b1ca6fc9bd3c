# BIDL's SeqClif5Fc2CdItout (applications/classification/dvs/cifar10dvs/
# vgg_cifar10dvs/backbone.py) with clif5fc2cd_itout-b64x1-cifar10dvs.py's
# options: analog LIF (cmode='analog': LIAF, ReLU of the membrane), noise 0;
# conv 5x5/2 32, then 3x3 64/128/256/512, each Conv2dLif followed by a
# separate 2x2 max pool on its output (pool_position='output': the neurons
# run at the unpooled size; 128 -> 2), Linear 2048 -> 512 + ReLU, the head's
# readout to 10, logits averaged over time. BIDL's Conv2dLif defaults to
# norm_state=True (layers/lif.py): BatchNorm on the membrane, none on the
# current (norm=False here).
# Loss: BIDL's LabelSmoothLoss(label_smooth_val=0.1) in its default
# 'classy_vision' mode (losses/label_smooth_loss.py) smooths by
# 0.1 / (1 + 0.1) in torch's convention.
model = dict(
    type='SpikingClassifier',
    backbone=dict(
        type='ConvLifNet',
        in_channels=2,
        input_size=128,
        channels=(32, 64, 128, 256, 512),
        pools=(2, 2, 2, 2, 2),
        pool_position='output',
        kernel_size=(5, 3, 3, 3, 3),
        strides=(2, 1, 1, 1, 1),
        norm=False,
        fc=(512, ),
        fc_type='relu',
        neuron=dict(type='LIF', mode='analog', norm_state=True)),
    head=dict(
        type='SpikingClsHead',
        in_features=512,
        num_classes=10,
        aggregation='mean',
        loss=dict(type='CrossEntropyLoss', label_smoothing=0.1 / 1.1)))
