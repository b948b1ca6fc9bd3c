# CIFAR10-DVS: 10 x 1000 AEDAT 2.0 recordings, 128x128, the 9:1 per-class
# split shipped with the dataset class. BIDL (applications/classification/
# dvs/cifar10dvs/vgg_cifar10dvs/clif5fc2cd/clif5fc2cd_itout-b64x1-
# cifar10dvs.py; tools/train.py reads T = 10 frames split by number): T = 10
# frames at full 128x128 resolution, batch 64; training frames zero-padded
# by 16 and randomly cropped back to 128x128 (RandomCropVideo(size=128,
# padding=16)), then flipped left-right with probability 0.5
# (RandomFlipVideo(flip_prob=0.5, direction='horizontal')); no test-time
# augmentation.
_data_root = 'datasets/CIFAR10DVS'
num_steps = 10  # T, the time steps of a sample: stated once, used below
_representation = dict(
    type='EventFrames', num_steps=num_steps, split_by='number')

train_dataloader = dict(
    batch_size=64,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='CIFAR10DVS',
        data_root=_data_root,
        split='train',
        representation=_representation,
        pipeline=[
            dict(type='RandomCropPad', padding=16),
            dict(type='RandomFlipFrames', prob=0.5),
        ]))
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
