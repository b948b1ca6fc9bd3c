# BIDL's RGB gesture (frame differences, 60 steps of 2x40x40) with the
# clif3flif2 network (noise 1e-3), Adam 1e-3, lr steps at 20 / 40, 50 epochs.
_base_ = [
    '_base_/models/clif3flif2_dvs_gesture.py',
    '_base_/datasets/rgb_gesture.py',
    '_base_/schedules/adam_multistep_50e.py',
    '_base_/default_runtime.py',
]
model = dict(backbone=dict(neuron=dict(type='LIF', noise=1e-3)))
# input hint (T, C, H, W): the stored clips have 60 steps
_input_shape = (60, 2, 40, 40)
