# CIFAR10-DVS with BIDL's clif7fc1cd network (seven pooled Conv2dLif + one
# linear readout), T = 10 frames of 128x128.
_base_ = [
    '../_base_/models/clif7fc1_dvs.py',
    '../_base_/datasets/cifar10_dvs.py',
    '../_base_/schedules/adam_warmup_multistep_100e.py',
    '../_base_/default_runtime.py',
]
model = dict(head=dict(num_classes=10))
