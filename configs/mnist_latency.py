# MNIST with latency (time-to-first-spike) coding, BIDL's clif3fc3mntime
# setting: T = 8, one spike per pixel at round(7 ln(x / (x - 0.01))) (tau 7,
# logarithmic), pixels <= 0.01 silent; otherwise as configs/mnist_rate.py.
_base_ = ['mnist_rate.py']
num_steps = 8
model = dict(
    data_preprocessor=dict(
        encoder=dict(_delete_=True, type='LatencyEncoder',
                     num_steps=num_steps, method='log', tau=7.0,
                     threshold=0.01)))
_input_shape = (num_steps, 1, 28, 28)
