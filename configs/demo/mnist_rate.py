# Demo: rate-coded synthetic MNIST (T = 20, Bernoulli) on a small Conv-LIF
# network; the digits are generated into datasets/SyntheticMNIST on first
# use (MNIST IDX files) and read by the real reader. A few minutes on 2 CPU
# cores.
_base_ = [
    '../_base_/datasets/mnist_synthetic.py',
    '../_base_/schedules/adam_cosine.py',
    '../_base_/default_runtime.py',
]
_T = 20
model = dict(
    type='SpikingClassifier',
    data_preprocessor=dict(
        type='SpikingDataPreprocessor',
        encoder=dict(type='RateEncoder', T=_T, method='bernoulli')),
    backbone=dict(
        type='ConvLifNet',
        in_channels=1,
        input_size=28,
        channels=(16, 32),
        pools=(2, 2),
        fc=(128, ),
        neuron=dict(type='LIF')),
    head=dict(type='SpikingClsHead', in_features=128, num_classes=10))
optim_wrapper = dict(optimizer=dict(lr=2e-3))
train_cfg = dict(max_epochs=4)
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, T_max=4, eta_min=1e-5)
]
default_hooks = dict(logger=dict(interval=20))
