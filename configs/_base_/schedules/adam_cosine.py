# Adam with cosine decay: BIDL's default for its DVS tasks.
optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-3, weight_decay=0.0))
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, T_max=20, eta_min=1e-5)
]
train_cfg = dict(by_epoch=True, max_epochs=20, val_interval=1)
val_cfg = dict()
test_cfg = dict()
