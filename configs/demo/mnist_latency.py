# Demo: latency-coded synthetic MNIST (T = 8, BIDL's tau = 7 log code).
_base_ = ['mnist_rate.py']
model = dict(
    data_preprocessor=dict(
        encoder=dict(_delete_=True, type='LatencyEncoder', T=8, method='log',
                     tau=7.0, threshold=0.01)))
