# DVS128 Gesture with a Spikformer (D = 256, 2 blocks, 8 heads): T = 16
# frames of 128x128, four pooled SPS stages (128 -> 8, 64 tokens).
_base_ = ['../dvs_gesture.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='Spikformer',
        in_channels=2,
        dim=256,
        depth=2,
        heads=8,
        mlp_ratio=4,
        pool_stages=4,
        neuron=dict(type='LIF')),
    head=dict(
        _delete_=True,
        type='SpikingClsHead',
        in_features=256,
        num_classes=11,
        aggregation='mean',
        loss=dict(type='CrossEntropyLoss')))
num_steps = 16  # T, frames per sample: stated once, used below
_representation = dict(
    type='EventFrames', num_steps=num_steps, split_by='number', size=128)
train_dataloader = dict(dataset=dict(representation=_representation))
val_dataloader = dict(dataset=dict(representation=_representation))
test_dataloader = val_dataloader
_input_shape = (num_steps, 2, 128, 128)
