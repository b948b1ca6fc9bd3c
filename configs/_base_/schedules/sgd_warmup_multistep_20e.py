# BIDL's DVS-MNIST / Luna16Cls schedule: SGD with Nesterov momentum 0.9,
# weight decay 1e-4, linear warm-up from 0.01x over 500 iterations, lr x0.1
# at epochs 10 and 16, 20 epochs. Leaf configs set the lr (DVS-MNIST 0.1,
# Luna16Cls 0.03).
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, nesterov=True,
                   weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=500),
    dict(type='MultiStepLR', by_epoch=True, milestones=[10, 16], gamma=0.1)
]
train_cfg = dict(by_epoch=True, max_epochs=20, val_interval=1)
val_cfg = dict()
test_cfg = dict()
