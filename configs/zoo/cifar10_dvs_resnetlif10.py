# CIFAR10-DVS with ResNetLif-10: ResNetLif-18's settings, depth 10.
_base_ = ['cifar10_dvs_resnetlif18.py']
model = dict(backbone=dict(depth=10))
