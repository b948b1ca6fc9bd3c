# CIFAR10-DVS: 10 x 1000 AEDAT 2.0 recordings, 128x128, the 9:1 per-class
# split shipped with the dataset class. BIDL: T = 10 frames at full 128x128
# resolution, batch 64.
_data_root = 'datasets/CIFAR10DVS'
_representation = dict(type='EventFrames', T=10, split_by='number')

train_dataloader = dict(
    batch_size=64,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='CIFAR10DVS',
        data_root=_data_root,
        split='train',
        representation=_representation))
val_dataloader = dict(
    batch_size=64,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='CIFAR10DVS',
        data_root=_data_root,
        split='test',
        representation=_representation))
test_dataloader = val_dataloader
val_evaluator = [dict(type='Accuracy', topk=(1, 5)), dict(type='FiringRate')]
test_evaluator = val_evaluator
