#!/usr/bin/env bash
# One-off check of the Triton LIF kernel on a CUDA machine (torch with CUDA
# and triton installed; nothing is downloaded). Under 5 minutes on one H100:
#   1. tests/neurons/test_lif_triton.py: every numerics test on real CUDA
#      tensors with the compiled kernels (and again under Triton's
#      interpreter), float64 gradcheck on CUDA, auto-selection on a real GPU,
#      the membrane-BatchNorm kernel (norm_state) against the loop in
#      float64 and float32, training and eval;
#   2. the neuron benchmark at T=16, B=32, 128x32x32 (LIF layer and the small
#      conv-LIF network): Triton kernel vs SpikingJelly and the PyTorch
#      kernel, time and saved-memory ratios from one run;
#   3. the LIF layer again with SpikingJelly forced to its PyTorch
#      implementation (its default on CUDA is its own Triton kernel unless
#      its native CUDA operators were built);
#   4. one training step of configs/dvs_gesture.py (membrane BatchNorm) at
#      batch 8: the Triton membrane-BN kernel ('bidl fused'), the
#      pure-PyTorch one, the synaptic-BN variant and SpikingJelly with the
#      same membrane BatchNorm, time and saved memory from one run.
# Usage: bash tools/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

python - <<'PY'
import torch
import triton
assert torch.cuda.is_available(), 'no CUDA device: this check is for GPUs'
print(f'torch {torch.__version__}, triton {triton.__version__}, '
      f'{torch.cuda.get_device_name()}')
PY

# the first use of each kernel variant compiles it (about a second each)
timeout 240 python -m pytest tests/neurons/test_lif_triton.py -q -x -rs \
    --durations=5 -p no:cacheprovider

layer='--steps 16 --batch 32 --channels 128 --size 32 --repeats 5'
timeout 60 python tools/benchmark_neurons.py $layer --net-steps 16 \
    --net-batch 16
SJ_LIF_CUDA_IMPLEMENTATION=torch timeout 40 \
    python tools/benchmark_neurons.py $layer --net-steps 0
timeout 120 python tools/benchmark_neurons.py --steps --net-steps 0 \
    --repeats 3 --configs configs/dvs_gesture.py --skip 'bidl loop'
