# ES-ImageNet: ImageNet-1k converted to events, 8 steps of 2x224x224 frames
# (see datasets/ES-ImageNet/README.md), 1000 classes, ~1.26M train / 49k
# val. BIDL trains with 16 samples per GPU on 4 GPUs (b64x4 in its name:
# 64 x 4 would not fit); here batch 16 per process.
_data_root = 'datasets/ES-ImageNet'
num_steps = 8  # T: the release stores 8 frames per sample


def _loader(split, shuffle):
    return dict(
        batch_size=16,
        num_workers=4,
        persistent_workers=True,
        sampler=dict(type='DefaultSampler', shuffle=shuffle),
        collate_fn=dict(type='default_collate'),
        dataset=dict(type='ESImageNet', data_root=_data_root, split=split))


train_dataloader = _loader('train', True)
val_dataloader = _loader('val', False)
test_dataloader = val_dataloader
val_evaluator = [dict(type='Accuracy', topk=(1, 5)), dict(type='FiringRate')]
test_evaluator = val_evaluator
