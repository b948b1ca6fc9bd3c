# DVS128 Gesture (IBM): AEDAT 3.1 recordings + label windows, 1176 / 288
# samples, 11 classes. BIDL: T = 60 frames of 40x40 (events integrated by
# number), batch 16; training frames zero-padded by 4 and randomly cropped
# back to 40x40 (BIDL's RandomCropVideo(size=40, padding=4)).
_data_root = 'datasets/DVS128Gesture'
num_steps = 60  # T, the time steps of a sample: stated once, used below
_representation = dict(
    type='EventFrames', num_steps=num_steps, split_by='number', size=40)

train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='DVS128Gesture',
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
        type='DVS128Gesture',
        data_root=_data_root,
        split='test',
        representation=_representation))
test_dataloader = val_dataloader
val_evaluator = [dict(type='Accuracy', topk=(1, 5)), dict(type='FiringRate')]
test_evaluator = val_evaluator
