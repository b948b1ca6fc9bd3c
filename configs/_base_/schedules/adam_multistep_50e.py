# BIDL's RGB-gesture and IMDB schedule: Adam 1e-3 (weight decay 1e-4), 50
# epochs, lr x0.1 at the milestones (RGB gesture: 20, 40; IMDB: 10, 25, 35
# set in the leaf config).
optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-3, weight_decay=1e-4))
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, milestones=[20, 40], gamma=0.1)
]
train_cfg = dict(by_epoch=True, max_epochs=50, val_interval=1)
val_cfg = dict()
test_cfg = dict()
