# Demo: population-coded synthetic MNIST (T = 10, 5 Gaussian neurons per
# pixel -> 5 input channels).
_base_ = ['mnist_rate.py']
model = dict(
    data_preprocessor=dict(
        encoder=dict(_delete_=True, type='PopulationEncoder', T=10,
                     num_neurons=5, spike='latency')),
    backbone=dict(in_channels=5))
train_cfg = dict(max_epochs=6)
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, T_max=6, eta_min=1e-5)
]
_input_shape = (10, 5, 28, 28)
