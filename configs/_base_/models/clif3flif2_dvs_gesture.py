# BIDL's SeqClif3Flif2DgItout (applications/classification/dvs/dvs_gesture/
# backbone.py): input BatchNorm, three Conv2dLif 64/128/256, 3x3 stride 2
# (40 -> 5), FcLif 256, FcLif to the 11 classes; the logits are the last
# layer's spikes averaged over time (BIDL adds x6 / t every step).
# BIDL's Conv2dLif and FcLif default to norm_state=True (layers/lif.py): the
# BatchNorm acts on the membrane (u = BN(x_t + v)), not on the synaptic
# current, so the convs here carry no BatchNorm of their own (norm=False) and
# the neurons have norm_state=True. LIF defaults are BIDL's SOMA_PARAMS
# (alpha 0.3, beta 0, theta 0.5, v0 0, one value per layer = soma_params
# 'all_share'); spiking convs and FCs (cmode = fmode = 'spike').
# BIDL trains this net in its outer-loop form (..._itout-...): every time step
# runs the whole network, so the input BatchNorm normalises each step over the
# batch and updates its running statistics T times per batch
# (norm_stats='per_step'; docs/bidl_configs.md has the measured comparison).
_num_classes = 11
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
        norm=False,
        fc=(256, _num_classes),
        neuron=dict(type='LIF', mode='spike', norm_state=True),
        norm_stats='per_step'),
    # BIDL's output stage: no trained readout, the mean spike count of the
    # class neurons is the logit (PopulationClsHead with one neuron per
    # class, scale 1)
    head=dict(
        type='PopulationClsHead',
        num_classes=_num_classes,
        group_size=1,
        scale=1.0,
        loss=dict(type='CrossEntropyLoss')))
