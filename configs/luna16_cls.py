# Luna16Cls with BIDL's clif3fc3lc network (applications/classification/
# three_D/luna16cls/clif3fc3lc/clif3fc3lc_itout-b16x1-luna16cls.py): 8
# slices of 32x32 as time, analog LIF (noise 0) with membrane BatchNorm, max
# pool after each layer, cross-entropy, no augmentation (BIDL's crop and
# rotation are commented out), SGD 0.03 (Nesterov, weight decay 1e-4) with
# warm-up, lr steps at 10 / 16, 20 epochs, batch 16.
_base_ = [
    '_base_/models/clif3fc3.py',
    '_base_/datasets/luna16_cls.py',
    '_base_/schedules/sgd_warmup_multistep_20e.py',
    '_base_/default_runtime.py',
]
model = dict(
    backbone=dict(in_channels=1, input_size=32), head=dict(num_classes=2))
optim_wrapper = dict(optimizer=dict(lr=0.03))
