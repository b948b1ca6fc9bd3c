# N-MNIST (34x34, T = 10 frames) with the clif3fc3 network of BIDL's
# DVS-MNIST task (34 -> 4 after three pools) and its SGD schedule.
_base_ = [
    '_base_/models/clif3fc3.py',
    '_base_/datasets/n_mnist.py',
    '_base_/schedules/sgd_warmup_multistep_20e.py',
    '_base_/default_runtime.py',
]
model = dict(
    backbone=dict(in_channels=2, input_size=34),
    head=dict(num_classes=10,
              loss=dict(type='CrossEntropyLoss', label_smoothing=0.1)))
