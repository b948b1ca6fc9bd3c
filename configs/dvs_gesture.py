# DVS128 Gesture with BIDL's clif3flif2dg network: T = 60 frames of 40x40,
# Adam 1e-3, lr steps at epochs 60 / 90, 100 epochs, batch 16.
_base_ = [
    '_base_/models/clif3flif2_dvs_gesture.py',
    '_base_/datasets/dvs128_gesture.py',
    '_base_/schedules/adam_multistep_100e.py',
    '_base_/default_runtime.py',
]
