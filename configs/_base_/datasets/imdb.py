# IMDB (aclImdb): 25000 / 25000 reviews, 2 classes. BIDL: the 999 most
# frequent training words (+ unknown = 1000, pad = 0), reviews padded /
# truncated to 500 tokens, one token per time step; batch 16.
_data_root = 'datasets/IMDB'
num_steps = 500  # T: tokens per review, one per step
train_dataloader = dict(
    batch_size=16,
    num_workers=1,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='IMDB', data_root=_data_root, split='train', vocab_size=999,
        num_steps=num_steps))
val_dataloader = dict(
    batch_size=16,
    num_workers=1,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='IMDB', data_root=_data_root, split='test', vocab_size=999,
        num_steps=num_steps))
test_dataloader = val_dataloader
val_evaluator = [dict(type='Accuracy', topk=(1, )), dict(type='FiringRate')]
test_evaluator = val_evaluator
