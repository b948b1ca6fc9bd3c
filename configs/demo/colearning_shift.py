# Global-local co-learning demo: recover accuracy after a sensor change with
# local learning only (no backpropagation), as on a neuromorphic chip.
#
# Data: SyntheticMotion (a blob moving right/left/down/up on a 16x16 DVS-like
# sensor, generated on the fly). The deployed sensor has its ON/OFF
# polarity channels swapped (ShiftedDataset, swap_polarity=True): every
# motion now looks like the opposite one, so the lab-trained network is
# confidently wrong.
#
#   phase 0 (global, epochs 1-5): BPTT on the lab data;
#   phase 1 (local, epochs 6-7): global weights frozen, no gradients,
#       forward passes only on the labelled stream from the new sensor; the
#       plastic output layer (backbone.3) learns with reward-modulated STDP.
#
# Validation runs on the SHIFTED test set after every epoch, so one run's
# log holds both numbers: after epoch 5 = global-only training, after
# epoch 7 = with the local phase. tools/colearning_demo.py runs this config
# and prints the comparison, plus the accuracy on the unshifted test set.
_base_ = [
    '../_base_/models/plastic_conv_lif.py',
    '../_base_/schedules/adam_cosine.py',
    '../_base_/default_runtime.py',
]

_global_epochs = 5
_local_epochs = 2
_shift = dict(swap_polarity=True)

optim_wrapper = dict(optimizer=dict(type='Adam', lr=3e-3))
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, T_max=_global_epochs,
         eta_min=1e-4)
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(save_best=None, max_keep_ckpts=1))

num_steps = 8  # T, the frames of a motion sample
_train_set = dict(type='SyntheticMotion', split='train', num_samples=400,
                  num_steps=num_steps)
_test_set = dict(type='SyntheticMotion', split='test', num_samples=200,
                 num_steps=num_steps)
_loader = dict(
    batch_size=16,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'))

train_dataloader = dict(_loader, dataset=_train_set)
val_dataloader = dict(
    _loader,
    batch_size=50,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ShiftedDataset', dataset=_test_set, **_shift))
test_dataloader = val_dataloader
# SyntheticMotion's default sample shape (T, C, H, W), for the config test
_input_shape = (num_steps, 2, 16, 16)
val_evaluator = [dict(type='Accuracy', topk=(1, )), dict(type='FiringRate')]
test_evaluator = val_evaluator

# the co-learning training loop runs the two phases (see the header)
train_cfg = dict(
    type='GlobalLocalLoop',
    max_epochs=_global_epochs + _local_epochs,
    phases=[
        dict(mode='global', epochs=_global_epochs),
        dict(
            mode='local',
            epochs=_local_epochs,
            layers=['backbone.3'],
            data=dict(
                _loader,
                dataset=dict(
                    type='ShiftedDataset', dataset=_train_set, **_shift))),
    ])
