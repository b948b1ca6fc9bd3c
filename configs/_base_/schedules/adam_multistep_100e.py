# BIDL's DVS128 Gesture schedule: Adam 1e-3 (weight decay 1e-4), lr x0.1 at
# epochs 60 and 90, 100 epochs.
optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-3, weight_decay=1e-4))
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, milestones=[60, 90], gamma=0.1)
]
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
val_cfg = dict()
test_cfg = dict()
