# N-MNIST (34x34, T = 10 frames) with a three-conv, three-FC network after
# BIDL's clif3fc3 (DVS-MNIST task) and its SGD schedule.
#
# Unlike the clif3fc3 base (analog LIAF neurons, max pooling, ReLU FC
# layers), this network lies entirely in the subset that NIR expresses
# exactly (shared/NIR.md), so `bidl-deploy --target nir` exports it spike for
# spike for Loihi/Lava, SpiNNaker2, snnTorch and Norse:
# * spiking LIF neurons everywhere (alpha 0.3, beta 0, theta 0.5, v0 0, hard
#   reset, one parameter per layer; no membrane BatchNorm);
# * stride-2 convolutions downsample instead of max pooling (NIR has no max
#   pooling): 34 -> 17 -> 9 -> 5;
# * BatchNorm after each conv, folded into the conv weights at export;
# * spiking FcLif layers instead of Linear + ReLU; the head's linear readout
#   is an Affine node, its time average is taken outside the graph.
_base_ = [
    '_base_/models/clif3fc3.py',
    '_base_/datasets/n_mnist.py',
    '_base_/schedules/sgd_warmup_multistep_20e.py',
    '_base_/default_runtime.py',
]
model = dict(
    backbone=dict(
        in_channels=2,
        input_size=34,
        channels=(32, 64, 128),
        pools=(None, None, None),
        strides=(2, 2, 2),
        fc=(512, 128),
        fc_type='lif',
        # BatchNorm on the current (foldable), not BIDL's membrane BatchNorm
        norm=True,
        neuron=dict(_delete_=True, type='LIF', mode='spike')),
    head=dict(num_classes=10,
              loss=dict(type='CrossEntropyLoss', label_smoothing=0.1)))
