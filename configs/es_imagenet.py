# ES-ImageNet with BIDL's resnetlif18-itout-b64x4-esimagenet: ResNetLif-18
# (ImageNet stem, analog LIF with noise 1e-3) on T = 8 frames of 2x224x224,
# 1000 classes, BIDL's label smoothing 0.1 (0.1 / 1.1 in torch's
# convention), SGD lr 0.03 momentum 0.9 wd 1e-4, 25 epochs (BIDL's lr steps
# at 30/60/90 lie beyond them: constant lr), batch 16 per process
# (applications/classification/dvs/esimagenet/resnetlif18ES/
# resnetlif18-itout-b64x4-esimagenet.py).
_base_ = [
    '_base_/models/resnetlif18.py',
    '_base_/datasets/es_imagenet.py',
    '_base_/default_runtime.py',
]
model = dict(
    backbone=dict(in_channels=2),
    head=dict(num_classes=1000))
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.03, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, milestones=[30, 60, 90],
         gamma=0.1)
]
train_cfg = dict(by_epoch=True, max_epochs=25, val_interval=1)
val_cfg = dict()
test_cfg = dict()
_input_shape = ({{_base_.num_steps}}, 2, 224, 224)
