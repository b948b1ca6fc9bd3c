# NoduleMNIST3D (not a BIDL task): 28 slices of 28x28 as time through
# BIDL's clif3fc3 network as in Luna16Cls (28 -> 3 after three pools), Adam
# 1e-3 with cosine decay, 30 epochs.
_base_ = [
    '_base_/models/clif3fc3.py',
    '_base_/datasets/medmnist3d.py',
    '_base_/schedules/adam_cosine.py',
    '_base_/default_runtime.py',
]
model = dict(
    backbone=dict(in_channels=1, input_size=28), head=dict(num_classes=2))
train_cfg = dict(max_epochs=30)
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, T_max=30, eta_min=1e-5)
]
