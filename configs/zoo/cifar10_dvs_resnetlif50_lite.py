# CIFAR10-DVS with ResNetLif-50 lite (LIF only in the first block of each
# stage).
_base_ = ['cifar10_dvs_resnetlif50.py']
model = dict(backbone=dict(lite=True))
