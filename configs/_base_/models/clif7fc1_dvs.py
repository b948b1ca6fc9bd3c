# BIDL's SeqClif7Fc1DgItout / SeqClif7Fc1CdItout (applications/
# classification/dvs/dvs_gesture/backbone.py, .../cifar10dvs/vgg_cifar10dvs/
# backbone.py): seven Conv2dLif 64/64/128/128/256/256/512 with mp=True (max
# pool by 2 inside the layer, on the synaptic current: 128 -> 1), then one
# linear readout (the head) averaged over time. BIDL's Conv2dLif defaults to
# norm_state=True (layers/lif.py): BatchNorm on the membrane, none on the
# current (norm=False here).
model = dict(
    type='SpikingClassifier',
    backbone=dict(
        type='ConvLifNet',
        in_channels=2,
        input_size=128,
        channels=(64, 64, 128, 128, 256, 256, 512),
        pools=(2, 2, 2, 2, 2, 2, 2),
        pool_position='synapse',
        norm=False,
        fc=(),
        neuron=dict(type='LIF', mode='spike', norm_state=True)),
    head=dict(
        type='SpikingClsHead',
        in_features=512,
        num_classes=11,
        aggregation='mean',
        loss=dict(type='CrossEntropyLoss')))
