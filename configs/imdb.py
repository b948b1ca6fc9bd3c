# IMDB with BIDL's spiking FastText (applications/classification/text/imdb/
# fasttextIM/fasttext-b16x1-imdb.py): 500 tokens (one per step), vocabulary
# 999 + pad + unknown, one logit read at the last step with a sigmoid
# binary cross-entropy, Adam 1e-3 (weight decay 1e-4), lr steps at 10 / 25 /
# 35, 50 epochs, batch 16.
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
