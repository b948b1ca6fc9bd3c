# 20BN-Jester v1: 27 hand gestures, JPEG frame folders + ';'-separated CSVs.
# BIDL: T = 16 RGB frames at 112x112; training clips with the bell-shaped
# random stride (1.0, 2.0, 0.1), frame dropout 0.05, crop/pad to an aspect
# ratio in [1, 4/3], cutout and random resized crops; validation clips
# centred with stride 1.5. Batch 40.
_data_root = 'datasets/Jester'
num_steps = 16  # T: frames per clip, stated once, used below
train_dataloader = dict(
    batch_size=40,
    num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='Jester',
        data_root=_data_root,
        split='train',
        num_steps=num_steps,
        frame_dropout=0.05,
        pipeline=[
            dict(type='CropPadByRatioVideo', allowed_ratio=(1, 4 / 3),
                 pad=(0.1, 0.2)),
            dict(type='CutoutVideo', area=0.2, prob=0.4),
            dict(type='RandomResizedCropVideo', size=112, scale=(0.4, 1.0)),
        ]))
val_dataloader = dict(
    batch_size=40,
    num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='Jester',
        data_root=_data_root,
        split='val',
        num_steps=num_steps,
        pipeline=[
            dict(type='CropPadByRatioVideo', allowed_ratio=(1, 4 / 3)),
            dict(type='ResizeVideo', size=(112, -1)),
            dict(type='CenterCropVideo', size=112),
        ]))
test_dataloader = val_dataloader
val_evaluator = [dict(type='Accuracy', topk=(1, 5)), dict(type='FiringRate')]
test_evaluator = val_evaluator
