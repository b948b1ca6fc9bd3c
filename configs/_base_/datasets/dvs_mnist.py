# MNIST-DVS (AEDAT 2.0 recordings of moving digits). BIDL (applications/
# classification/dvs/dvs_mnist/clif3fc3dm/clif3fc3dm_itout-b16x1-
# dvsmnist.py; tools/train.py reads T = 20 frames split by number): T = 20
# frames resized to 40x40, batch 16; training frames zero-padded by 4 and
# randomly cropped back to 40x40 (RandomCropVideo(size=40, padding=4)).
_data_root = 'datasets/DVSMNIST'
num_steps = 20  # T, the time steps of a sample: stated once, used below
_representation = dict(
    type='EventFrames', num_steps=num_steps, split_by='number', size=40)

train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='DVSMNIST',
        data_root=_data_root,
        split='train',
        representation=_representation,
        pipeline=[dict(type='RandomCropPad', padding=4)]))
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
