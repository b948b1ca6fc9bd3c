# Jester with BIDL's ResNetLif-18: T = 16 RGB frames of 112x112, SGD 0.1,
# cosine decay, 200 epochs, batch 40, label smoothing 0.1.
_base_ = [
    '_base_/models/resnetlif18.py',
    '_base_/datasets/jester.py',
    '_base_/schedules/sgd_cosine_200e.py',
    '_base_/default_runtime.py',
]
# input hint for tools that build a random batch: (T, C, H, W)
_input_shape = (16, 3, 112, 112)
