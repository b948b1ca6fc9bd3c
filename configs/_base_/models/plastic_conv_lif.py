# A small Conv-LIF network whose output layer is plastic: two Conv2dLif
# blocks (trained by BPTT), then a PlasticFcLif population layer (global
# weight by BPTT + persistent local weight by BIDL's reward-modulated STDP),
# read out by a fixed population vote (one group of _group_size neurons per
# class). Input: 2-channel 16x16 event frames.
_num_classes = 4
_group_size = 10
_neuron = dict(type='LIF', alpha=0.5, theta=0.5)
model = dict(
    type='SpikingClassifier',
    backbone=dict(
        type='SpikingSequential',
        layers=[
            dict(type='Conv2dLif', in_channels=2, out_channels=8, pool=2,
                 neuron=_neuron),
            dict(type='Conv2dLif', in_channels=8, out_channels=16, pool=2,
                 neuron=_neuron),
            dict(type='Flatten'),
            # backbone.3: the plastic population layer
            dict(
                type='PlasticFcLif',
                in_features=16 * 4 * 4,
                out_features=_num_classes * _group_size,
                plasticity='persistent',
                rule=dict(
                    type='RewardSTDP',
                    num_classes=_num_classes,
                    group_size=_group_size,
                    lr=0.02,
                    a_plus=1.0,
                    a_minus=0.5,
                    pre_eligibility=1.0,
                    pre_decay=0.5,
                    post_decay=0.5,
                    w_min=-1.0,
                    w_max=1.0),
                neuron=_neuron),
        ]),
    head=dict(
        type='PopulationClsHead',
        num_classes=_num_classes,
        group_size=_group_size,
        scale=10.0))
