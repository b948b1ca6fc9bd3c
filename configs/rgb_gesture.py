# BIDL's RGB gesture (applications/classification/videodiff/rgbgesture/
# clif3flif2rg/clif3flif2rg_itout-b16x1-rgbgesture.py): frame differences,
# 60 steps of 2x40x40, random crop with padding 4, the clif3flif2 network
# (spiking LIF with noise 1e-3, membrane BatchNorm, the last FcLif's spikes
# averaged over time as logits), cross-entropy, Adam 1e-3 (weight decay
# 1e-4), lr steps at 20 / 40 (BIDL lists 20 / 40 / 60 / 80; the last two lie
# beyond the 50 epochs), batch 16.
_base_ = [
    '_base_/models/clif3flif2_dvs_gesture.py',
    '_base_/datasets/rgb_gesture.py',
    '_base_/schedules/adam_multistep_50e.py',
    '_base_/default_runtime.py',
]
model = dict(backbone=dict(neuron=dict(type='LIF', noise=1e-3)))
# input hint (T, C, H, W): the stored clips have 60 steps
_input_shape = ({{_base_.num_steps}}, 2, 40, 40)
