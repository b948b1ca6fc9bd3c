# MNIST with population coding, BIDL's clif3fc3mnpop setting: T = 10, five
# Gaussian receptive-field neurons per pixel (centres 0, .25, .5, .75, 1),
# each firing once, earlier for a stronger response -> 5 input channels;
# batch 64; otherwise as configs/mnist_rate.py.
_base_ = ['mnist_rate.py']
num_steps = 10
model = dict(
    data_preprocessor=dict(
        encoder=dict(_delete_=True, type='PopulationEncoder',
                     num_steps=num_steps, num_neurons=5, spike='latency')),
    backbone=dict(in_channels=5))
train_dataloader = dict(batch_size=64)
val_dataloader = dict(batch_size=64)
test_dataloader = dict(batch_size=64)
_input_shape = (num_steps, 5, 28, 28)
