# DVS128 Gesture with SEW-ResNet-18, connect function IAND (spike AND NOT):
# the ADD variant's settings otherwise.
_base_ = ['dvs_gesture_sew_resnet18_add.py']
model = dict(backbone=dict(cnf='IAND'))
