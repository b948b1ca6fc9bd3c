"""Run the co-learning demo and print global-only vs co-learned accuracy.

Usage::

    python tools/colearning_demo.py [CONFIG] [--work-dir DIR]

Trains CONFIG (default ``configs/demo/colearning_shift.py``) with its
global-local schedule, then evaluates on the shifted and the unshifted test
sets (a) the final network and (b) the same network with its local weights
zeroed, which is exactly the network after the global phase (the local
phase freezes every global parameter). Prints a table and the wall time.
"""
import argparse
import copy
import os.path as osp
import time

import torch

from bidl_train.cli.common import load_config
from bidl_train.engine import build_runner
from bidl_train.learning import PlasticLayer
from bidl_train.registry import DATASETS


def accuracy(model, dataset_cfg, batch_size=50):
    """Top-1 accuracy (%) of ``model`` in eval mode, no local learning."""
    dataset = DATASETS.build(copy.deepcopy(dataset_cfg))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size)
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for batch in loader:
            logits = model(batch['inputs'].transpose(0, 1), mode='tensor')
            correct += (logits.argmax(1) == batch['label']).sum().item()
            total += len(batch['label'])
    return 100.0 * correct / total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', nargs='?',
                        default='configs/demo/colearning_shift.py')
    parser.add_argument('--work-dir', default=None)
    args = parser.parse_args()
    cfg = load_config(args.config)
    cfg.work_dir = args.work_dir or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    start = time.time()
    runner = build_runner(cfg)
    runner.train()
    train_s = time.time() - start
    model = runner.model.module if hasattr(runner.model,
                                           'module') else runner.model
    shifted = cfg.test_dataloader.dataset
    plain = shifted.get('dataset', shifted)
    plastic = [m for m in model.modules() if isinstance(m, PlasticLayer)]
    for layer in plastic:
        layer.learning = False
    rows = [('with local phase (co-learning)', accuracy(model, shifted),
             accuracy(model, plain))]
    saved = [copy.deepcopy(layer.local_state_dict()) for layer in plastic]
    for layer in plastic:
        layer.reset_local()
    rows.insert(0, ('global only (local weights zeroed)',
                    accuracy(model, shifted), accuracy(model, plain)))
    for layer, state in zip(plastic, saved):
        for key, value in state.items():
            getattr(layer, key).copy_(value)
    print(f'\n{"network":38s} {"shifted test":>12s} {"unshifted test":>15s}')
    for name, acc_shift, acc_plain in rows:
        print(f'{name:38s} {acc_shift:11.1f}% {acc_plain:14.1f}%')
    print(f'training time (both phases): {train_s:.0f} s on '
          f'{torch.get_num_threads()} threads')


if __name__ == '__main__':
    main()
