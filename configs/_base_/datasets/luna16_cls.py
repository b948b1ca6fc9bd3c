# Luna16Cls as BIDL prepares it: uint8 [8, 32, 32] patches, the 8 depth
# slices are the 8 time steps, 2 classes; batch 16.
_data_root = 'datasets/Luna16'
num_steps = 8  # T: the 8 depth slices of a patch, one per step
train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='Luna16Cls', data_root=_data_root, split='train',
        num_steps=num_steps))
val_dataloader = dict(
    batch_size=16,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='Luna16Cls', data_root=_data_root, split='test',
        num_steps=num_steps))
test_dataloader = val_dataloader
val_evaluator = [dict(type='Accuracy', topk=(1, )), dict(type='FiringRate')]
test_evaluator = val_evaluator
