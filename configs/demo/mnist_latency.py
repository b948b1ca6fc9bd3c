# Demo: latency-coded synthetic MNIST (T = 8, BIDL's tau = 7 log code).
# The synthetic digits carry background noise (std ~0.05): with BIDL's
# threshold 0.01 every noisy background pixel fires too (at steps 1-3), so
# the demo silences inputs <= 0.2; digit strokes then fire at steps 2-4.
_base_ = ['mnist_rate.py']
model = dict(
    data_preprocessor=dict(
        encoder=dict(_delete_=True, type='LatencyEncoder', T=8, method='log',
                     tau=7.0, threshold=0.2)))
# one spike per pixel carries less evidence per step than rate coding:
# train longer
train_cfg = dict(max_epochs=6)
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, T_max=6, eta_min=1e-5)
]
_input_shape = (8, 1, 28, 28)
