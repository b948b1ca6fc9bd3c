# BIDL's SeqClif3Fc3DmItout / SeqClif3Fc3LcItout (applications/
# classification/dvs/dvs_mnist/backbone.py, three_D/luna16cls/backbone.py):
# analog Conv2dLif 32/64/128 (cmode='analog': LIAF, ReLU of the membrane),
# each followed by a separate 2x2 max pool on its output
# (pool_position='output': the neurons run at the unpooled size), Linear 512
# + ReLU, Linear 128 + ReLU, the head's readout, logits averaged over time.
# BIDL's Conv2dLif defaults to norm_state=True (layers/lif.py): BatchNorm on
# the membrane, none on the current (norm=False here). Leaf configs set
# in_channels, input_size and the classes.
model = dict(
    type='SpikingClassifier',
    backbone=dict(
        type='ConvLifNet',
        in_channels=2,
        input_size=40,
        channels=(32, 64, 128),
        pools=(2, 2, 2),
        pool_position='output',
        norm=False,
        fc=(512, 128),
        fc_type='relu',
        neuron=dict(type='LIF', mode='analog', norm_state=True)),
    head=dict(
        type='SpikingClsHead',
        in_features=128,
        num_classes=10,
        aggregation='mean',
        loss=dict(type='CrossEntropyLoss')))
