# MNIST with latency (time-to-first-spike) coding, BIDL's clif3fc3mntime
# setting: T = 8, one spike per pixel at round(7 ln(x / (x - 0.01))) (tau 7,
# logarithmic), pixels <= 0.01 silent; otherwise as configs/mnist_rate.py.
_base_ = ['mnist_rate.py']
model = dict(
    data_preprocessor=dict(
        encoder=dict(_delete_=True, type='LatencyEncoder', T=8, method='log',
                     tau=7.0, threshold=0.01)))
_input_shape = (8, 1, 28, 28)
