# Spiking Heidelberg Digits: 700-channel cochlea spike trains (.h5),
# 8156 / 2264, 20 classes. Spikes are events x = channel, y = 0, so frames
# are [T, 2, 1, 700]; T = 100 bins of equal duration (split by time).
_data_root = 'datasets/SHD'
num_steps = 100  # T, the time steps of a sample: stated once, used below
_representation = dict(
    type='EventFrames', num_steps=num_steps, split_by='time')

train_dataloader = dict(
    batch_size=64,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='SHD',
        data_root=_data_root,
        split='train',
        representation=_representation))
val_dataloader = dict(
    batch_size=64,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='SHD',
        data_root=_data_root,
        split='test',
        representation=_representation))
test_dataloader = val_dataloader
val_evaluator = [dict(type='Accuracy', topk=(1, 5)), dict(type='FiringRate')]
test_evaluator = val_evaluator
