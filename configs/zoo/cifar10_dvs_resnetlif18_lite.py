# CIFAR10-DVS with ResNetLif-18 lite (LIF only in the first block of each
# stage).
_base_ = ['cifar10_dvs_resnetlif18.py']
model = dict(backbone=dict(lite=True))
