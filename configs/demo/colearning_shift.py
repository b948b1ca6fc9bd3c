# Global-local co-learning demo: recover accuracy after a sensor shift with
# local learning only (no backpropagation), as on a neuromorphic chip.
#
#   phase 0 (global, epochs 1-6): BPTT on the synthetic gestures as
#       recorded in the lab;
#   phase 1 (local, epochs 7-8): the sensor is now mounted 6 px lower and
#       6 px further right (ShiftedDataset). Global weights are frozen,
#       no gradients: forward passes only, while the plastic output layer
#       learns with reward-modulated STDP from the labelled stream.
#
# Validation runs on the SHIFTED test set after every epoch, so the log of
# one run holds both numbers: the accuracy after epoch 6 is global-only
# training (what the deployed network gets without local learning), the
# accuracy after epoch 8 is with the local phase. tools/colearning_demo.py
# runs this config and prints the comparison (plus unshifted accuracies).
_base_ = [
    '../_base_/models/plastic_conv_lif.py',
    '../_base_/datasets/synthetic_gesture.py',
    '../_base_/schedules/adam_cosine.py',
    '../_base_/default_runtime.py',
]

_global_epochs = 6
_local_epochs = 2
_shift = (6, 6)

train_cfg = dict(max_epochs=_global_epochs + _local_epochs)
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, T_max=_global_epochs,
         eta_min=1e-5)
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(save_best=None, max_keep_ckpts=2))

# a folder of its own: another config generating different synthetic
# gestures into the shared folder cannot change this demo's data
_data_root = 'datasets/SyntheticGestureColearning'
_representation = dict(type='EventFrames', T=8, split_by='number', size=32)
_train_set = dict(
    type='SyntheticGesture',
    data_root=_data_root,
    num_classes=4,
    split='train',
    representation=_representation)
_test_set = dict(_train_set, split='test')

train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=_train_set)
val_dataloader = dict(
    batch_size=32,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    # _delete_: replace (not merge into) the base config's test set
    dataset=dict(
        _delete_=True, type='ShiftedDataset', dataset=_test_set,
        shift=_shift))
test_dataloader = val_dataloader
val_evaluator = [dict(type='Accuracy', topk=(1, )), dict(type='FiringRate')]
test_evaluator = val_evaluator

colearning = dict(
    type='GlobalLocalSchedule',
    phases=[
        dict(mode='global', epochs=_global_epochs),
        dict(
            mode='local',
            epochs=_local_epochs,
            layers=['backbone.4'],
            data=dict(
                batch_size=16,
                num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=True),
                collate_fn=dict(type='default_collate'),
                dataset=dict(
                    type='ShiftedDataset', dataset=_train_set,
                    shift=_shift))),
    ])
custom_hooks = [dict(type='ColearningHook')]
