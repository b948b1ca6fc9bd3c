# CIFAR10-DVS with ResNetLif-50: ResNetLif-18's settings, depth 50
# (Bottleneck blocks, 2048 output features).
_base_ = ['cifar10_dvs_resnetlif18.py']
model = dict(backbone=dict(depth=50), head=dict(in_features=2048))
