# N-MNIST: saccade recordings of MNIST digits, 34x34, 60000 / 10000,
# Train/<digit>/*.bin and Test/<digit>/*.bin. T = 10 frames integrated by
# number (the common SNN setting; BIDL has no N-MNIST config), batch 64.
_data_root = 'datasets/NMNIST'
num_steps = 10  # T, the time steps of a sample: stated once, used below
_representation = dict(
    type='EventFrames', num_steps=num_steps, split_by='number')

train_dataloader = dict(
    batch_size=64,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='NMNIST',
        data_root=_data_root,
        split='train',
        representation=_representation))
val_dataloader = dict(
    batch_size=64,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='NMNIST',
        data_root=_data_root,
        split='test',
        representation=_representation))
test_dataloader = val_dataloader
val_evaluator = [dict(type='Accuracy', topk=(1, 5)), dict(type='FiringRate')]
test_evaluator = val_evaluator
