# MNIST: 28x28 grey digits, 60000 / 10000, the four IDX files in
# datasets/MNIST (see datasets/MNIST/README.md). Samples are static
# [1, 28, 28] images in [0, 1]; leaf configs choose the spike code with
# model.data_preprocessor.encoder (rate / latency / population).
_data_root = 'datasets/MNIST'


def _loader(split, shuffle, batch):
    return dict(
        batch_size=batch,
        num_workers=2,
        sampler=dict(type='DefaultSampler', shuffle=shuffle),
        collate_fn=dict(type='default_collate'),
        dataset=dict(type='MNIST', data_root=_data_root, split=split))


train_dataloader = _loader('train', True, 128)
val_dataloader = _loader('test', False, 128)
test_dataloader = val_dataloader
val_evaluator = [dict(type='Accuracy', topk=(1, 5)), dict(type='FiringRate')]
test_evaluator = val_evaluator
