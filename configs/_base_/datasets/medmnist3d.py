# MedMNIST v2 3D (NoduleMNIST3D by default): uint8 [N, 28, 28, 28] volumes,
# the 28 depth slices are the 28 time steps, train / val / test splits.
_data_root = 'datasets/MedMNIST3D'
_flavor = 'nodulemnist3d'
num_steps = 28  # T: the 28 depth slices, one per step
train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='MedMNIST3D',
        data_root=_data_root,
        flavor=_flavor,
        split='train',
        num_steps=num_steps))
val_dataloader = dict(
    batch_size=32,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='MedMNIST3D',
        data_root=_data_root,
        flavor=_flavor,
        split='val',
        num_steps=num_steps))
test_dataloader = dict(
    batch_size=32,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='MedMNIST3D',
        data_root=_data_root,
        flavor=_flavor,
        split='test',
        num_steps=num_steps))
# MedMNIST reports ACC and AUC (mean one-vs-rest ROC AUC; class 1's AUC
# for two classes)
val_evaluator = [
    dict(type='Accuracy', topk=(1, )),
    dict(type='AUC'),
    dict(type='FiringRate')
]
test_evaluator = val_evaluator
