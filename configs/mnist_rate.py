# MNIST with rate (Bernoulli) coding, BIDL's clif3fc3mnrate setting: T = 20
# spike frames of the 28x28 image (pixel intensity = firing probability per
# step), spiking Conv-LIF 32/64/128 (membrane BatchNorm, max pool after each
# layer) + ReLU FCs 512/128, BIDL's label smoothing 0.1 (0.1 / 1.1 in
# torch's convention), SGD 0.1 (Nesterov) with warm-up, 20 epochs, batch
# 128 (applications/classification/spikegen/clif3fc3mn/
# clif3fc3mnrate_itout-b128x1-mnist.py).
_base_ = [
    '_base_/models/clif3fc3.py',
    '_base_/datasets/mnist.py',
    '_base_/schedules/sgd_warmup_multistep_20e.py',
    '_base_/default_runtime.py',
]
num_steps = 20  # T: the encoder repeats each image over 20 steps
model = dict(
    data_preprocessor=dict(
        type='SpikingDataPreprocessor',
        encoder=dict(type='RateEncoder', num_steps=num_steps,
                     method='bernoulli')),
    backbone=dict(in_channels=1, input_size=28,
                  neuron=dict(type='LIF', mode='spike')),
    head=dict(num_classes=10,
              loss=dict(type='CrossEntropyLoss', label_smoothing=0.1 / 1.1)))
# static images carry no T: the input shape the encoder produces, for tools
_input_shape = (num_steps, 1, 28, 28)
