# Jester with BIDL's ResNetLif-18 (applications/classification/video/jester/
# resnetlif18_t16/resnetlif18-itout-b20x4-16-jester.py): T = 16 RGB frames
# of 112x112, analog LIF with noise 1e-3, SGD 0.1 (momentum 0.9, weight
# decay 1e-4), cosine with T_max 40 over 200 epochs, batch 40 per process,
# BIDL's label smoothing 0.1 (0.1 / 1.1 in torch's convention).
_base_ = [
    '_base_/models/resnetlif18.py',
    '_base_/datasets/jester.py',
    '_base_/schedules/sgd_cosine_200e.py',
    '_base_/default_runtime.py',
]
# input hint for tools that build a random batch: (T, C, H, W)
_input_shape = ({{_base_.num_steps}}, 3, 112, 112)
