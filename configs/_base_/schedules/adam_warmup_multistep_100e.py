# BIDL's CIFAR10-DVS schedule: Adam 0.01 (weight decay 1e-4), linear warm-up
# from 0.1x over 1000 iterations, lr x0.1 at epochs 30, 60, 90; 100 epochs.
optim_wrapper = dict(optimizer=dict(type='Adam', lr=0.01, weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=1000),
    dict(type='MultiStepLR', by_epoch=True, milestones=[30, 60, 90],
         gamma=0.1)
]
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
val_cfg = dict()
test_cfg = dict()
