# BIDL's FastText for IMDB: Embedding(1001, 16) -> FcLif 256 (analog LIF,
# noise 1e-3), padded steps masked to zero input; dropout 0.5 and a linear
# readout averaged over the 500 steps.
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
        num_classes=2,
        dropout=0.5,
        aggregation='mean',
        loss=dict(type='CrossEntropyLoss')))
