# IMDB with BIDL's spiking FastText: 500 tokens (one per step), vocabulary
# 999 + pad + unknown, Adam 1e-3, lr steps at 10 / 25 / 35, 50 epochs.
_base_ = [
    '_base_/models/fasttext_lif.py',
    '_base_/datasets/imdb.py',
    '_base_/schedules/adam_multistep_50e.py',
    '_base_/default_runtime.py',
]
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, milestones=[10, 25, 35],
         gamma=0.1)
]
