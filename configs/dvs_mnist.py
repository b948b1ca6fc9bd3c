# MNIST-DVS with BIDL's clif3fc3dm network (applications/classification/
# dvs/dvs_mnist/clif3fc3dm/clif3fc3dm_itout-b16x1-dvsmnist.py): T = 20
# frames of 40x40, analog LIF (noise 0) with membrane BatchNorm, max pool
# after each layer, SGD 0.1 (Nesterov) with warm-up, lr steps at 10 / 16, 20
# epochs, batch 16, random crop with padding 4, BIDL's label smoothing 0.1
# (LabelSmoothLoss in 'classy_vision' mode = 0.1 / 1.1 in torch's
# convention).
_base_ = [
    '_base_/models/clif3fc3.py',
    '_base_/datasets/dvs_mnist.py',
    '_base_/schedules/sgd_warmup_multistep_20e.py',
    '_base_/default_runtime.py',
]
model = dict(
    backbone=dict(in_channels=2, input_size=40),
    head=dict(num_classes=10,
              loss=dict(type='CrossEntropyLoss', label_smoothing=0.1 / 1.1)))
