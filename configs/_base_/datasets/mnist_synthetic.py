# Synthetic MNIST: rendered digit glyphs (random Hershey font, scale,
# stroke, rotation, shift, blur, noise), 2000 train / 500 test, generated on
# first use into datasets/SyntheticMNIST as the four MNIST IDX files and read
# back by the real MNIST reader. No download needed.
_data_root = 'datasets/SyntheticMNIST'
_synthetic = dict(num_train=2000, num_test=500)


def _loader(split, shuffle, batch):
    return dict(
        batch_size=batch,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=shuffle),
        collate_fn=dict(type='default_collate'),
        dataset=dict(
            type='SyntheticMNIST',
            data_root=_data_root,
            split=split,
            **_synthetic))


train_dataloader = _loader('train', True, 32)
val_dataloader = _loader('test', False, 100)
test_dataloader = val_dataloader
val_evaluator = [dict(type='Accuracy', topk=(1, )), dict(type='FiringRate')]
test_evaluator = val_evaluator
