# MNIST-DVS (AEDAT 2.0 recordings of moving digits). BIDL: T = 20 frames
# resized to 40x40, batch 16.
_data_root = 'datasets/DVSMNIST'
_representation = dict(type='EventFrames', T=20, split_by='number', size=40)

train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='DVSMNIST',
        data_root=_data_root,
        split='train',
        representation=_representation))
val_dataloader = dict(
    batch_size=16,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='DVSMNIST',
        data_root=_data_root,
        split='test',
        representation=_representation))
test_dataloader = val_dataloader
val_evaluator = [dict(type='Accuracy', topk=(1, 5)), dict(type='FiringRate')]
test_evaluator = val_evaluator
