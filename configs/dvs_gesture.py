# DVS128 Gesture with BIDL's clif3flif2dg network (applications/
# classification/dvs/dvs_gesture/clif3flif2dg/
# clif3flif2dg_itout-b16x1-dvsgesture.py): T = 60 frames of 40x40 (the
# config's timestep; BIDL's tools/train.py loads 16 frames for DVS128 Gesture
# whatever the config says, here T comes from the config), spiking LIF
# (noise 0), membrane BatchNorm, the last FcLif's spikes averaged over time
# as logits, cross-entropy, Adam 1e-3 (weight decay 1e-4), lr steps at
# epochs 60 / 90, 100 epochs, batch 16, random crop with padding 4.
_base_ = [
    '_base_/models/clif3flif2_dvs_gesture.py',
    '_base_/datasets/dvs128_gesture.py',
    '_base_/schedules/adam_multistep_100e.py',
    '_base_/default_runtime.py',
]
