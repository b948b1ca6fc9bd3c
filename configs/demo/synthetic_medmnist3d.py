# Demo: a Conv-LIF network on synthetic MedMNIST-style volumes (blob /
# no blob, generated into datasets/SyntheticMedMNIST3D on first use and
# read back by the real MedMNIST3D reader); every second depth slice is a
# time step (T = 14).
_base_ = [
    '../_base_/schedules/adam_cosine.py',
    '../_base_/default_runtime.py',
]
_data_root = 'datasets/SyntheticMedMNIST3D'
_synthetic = dict(num_train=256, num_val=64, num_test=64)


def _loader(split, shuffle, batch):
    return dict(
        batch_size=batch,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=shuffle),
        collate_fn=dict(type='default_collate'),
        dataset=dict(
            type='SyntheticMedMNIST3D',
            data_root=_data_root,
            split=split,
            slice_stride=2,
            num_slices=14,
            **_synthetic))


train_dataloader = _loader('train', True, 16)
val_dataloader = _loader('val', False, 32)
test_dataloader = _loader('test', False, 32)
val_evaluator = [dict(type='Accuracy', topk=(1, )), dict(type='FiringRate')]
test_evaluator = val_evaluator
model = dict(
    type='SpikingClassifier',
    backbone=dict(
        type='ConvLifNet',
        in_channels=1,
        input_size=28,
        channels=(16, 32),
        pools=(2, 2),
        fc=(64, ),
        input_norm=True,
        neuron=dict(type='LIF')),
    head=dict(type='SpikingClsHead', in_features=64, num_classes=2))
optim_wrapper = dict(optimizer=dict(lr=2e-3))
train_cfg = dict(max_epochs=10)
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, T_max=10, eta_min=1e-5)
]
default_hooks = dict(logger=dict(interval=5))
