# BIDL's FastTextItout for IMDB (applications/classification/text/imdb/
# backbone.py, fasttextIM/fasttext-b16x1-imdb.py): Embedding(1001, 16) ->
# FcLif 256 (analog LIF, noise 1e-3) -> dropout 0.5 -> Linear(256, 1); the
# logit is read at the LAST step only (BIDL returns the last step's x4; the
# reviews are padded in front, so that step is the review's last token) and
# trained with a sigmoid binary cross-entropy (CrossEntropyLoss with
# use_sigmoid=True).
# Deliberately different: padded steps are masked to zero input (see
# bidl_train/models/backbones/fasttext_lif.py) and the neuron has no
# membrane BatchNorm (BIDL's FcLif defaults to norm_state=True): a BatchNorm
# of the membrane would move resting neurons during the leading padding,
# which the mask exists to prevent.
model = dict(
    type='SpikingClassifier',
    backbone=dict(
        type='FastTextLif',
        vocab_size=1001,
        embedding_dim=16,
        hidden_dim=256,
        neuron=dict(type='LIF', mode='analog', noise=1e-3)),
    head=dict(
        type='SpikingClsHead',
        in_features=256,
        num_classes=1,
        dropout=0.5,
        aggregation='last',
        loss=dict(type='BCEWithLogitsLoss')))
