# BIDL's Jester schedule (applications/classification/video/jester/
# resnetlif18_t16/resnetlif18-itout-b20x4-16-jester.py): SGD 0.1 with
# momentum 0.9, weight decay 1e-4, CosineAnnealingLR(T_max=40, eta_min=0)
# stepped every epoch for 200 epochs. Past T_max the cosine continues (as in
# torch and BIDL): 0.1 -> 0 at epoch 40, back to 0.1 at 80, 0 at 120, ...
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, T_max=40, eta_min=0.0)
]
train_cfg = dict(by_epoch=True, max_epochs=200, val_interval=1)
val_cfg = dict()
test_cfg = dict()
