# Synthetic gestures in the DVS128 Gesture layout (AEDAT 3.1), generated on
# first use into data_root. Classes differ only in the order of flashes.
_data_root = 'datasets/SyntheticGesture'
num_steps = 8  # T, the time steps of a sample: stated once, used below
_representation = dict(
    type='EventFrames', num_steps=num_steps, split_by='number', size=32)

train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='SyntheticGesture',
        data_root=_data_root,
        num_classes=4,
        split='train',
        representation=_representation))
val_dataloader = dict(
    batch_size=32,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='SyntheticGesture',
        data_root=_data_root,
        num_classes=4,
        split='test',
        representation=_representation))
test_dataloader = val_dataloader
val_evaluator = [dict(type='Accuracy', topk=(1, 3)), dict(type='FiringRate')]
test_evaluator = val_evaluator
