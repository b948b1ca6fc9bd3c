"""``bidl-train CONFIG``: train a model from a config file."""
import argparse
import os.path as osp

from bidl_train.errors import ConfigError

from .common import add_cfg_options, add_data_root, load_config, user_errors


def build_parser():
    parser = argparse.ArgumentParser(
        prog='bidl-train', description='Train a spiking network from a config')
    parser.add_argument('config', help='config file (.py or .yaml)')
    parser.add_argument(
        '--work-dir',
        help='where logs and checkpoints go (default work_dirs/<config stem>)')
    add_data_root(parser)
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        help='resume training: "auto" (the default when the flag is given '
        'alone) continues from the work dir\'s last_checkpoint; or a path')
    parser.add_argument(
        '--amp', action='store_true', help='mixed precision (CUDA only)')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='skip validation during training')
    add_cfg_options(parser)
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher for distributed training')
    parser.add_argument('--seed', type=int, help='random seed')
    parser.add_argument(
        '--deterministic',
        action='store_true',
        help='deterministic algorithms (bit-identical reruns on CPU)')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0,
                        help=argparse.SUPPRESS)
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def merge_args(cfg, args):
    """Fold the command-line options into the config."""
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif not cfg.get('work_dir'):
        cfg.work_dir = osp.join('work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.resume == 'auto':
        # resolve it here rather than in mmengine: a torn or empty
        # last_checkpoint falls back to the newest complete checkpoint
        from bidl_train.engine.checkpoint import find_resume_checkpoint
        found = find_resume_checkpoint(cfg.work_dir)
        cfg.resume = found is not None
        cfg.load_from = found
        if found is None:
            print(f'bidl-train: nothing to resume in {cfg.work_dir}; '
                  'starting from scratch')
    elif args.resume:
        # a path or an http(s) URL; other schemes are refused now rather
        # than after the runner is built (a missing file is reported by
        # the loader, which also sees load_from)
        from bidl_train.engine.checkpoint import check_checkpoint_source
        check_checkpoint_source(args.resume, local_must_exist=False)
        cfg.resume = True
        cfg.load_from = args.resume
    if args.amp:
        import torch
        if not torch.cuda.is_available():
            raise ConfigError(
                '--amp needs a CUDA GPU (mmengine\'s AmpOptimWrapper is '
                'GPU-only); drop --amp to train in float32 on the CPU')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    cfg.launcher = args.launcher
    if args.seed is not None or args.deterministic:
        randomness = dict(cfg.get('randomness') or {})
        if args.seed is not None:
            randomness['seed'] = args.seed
        if args.deterministic:
            randomness['deterministic'] = True
        cfg.randomness = randomness
    return cfg


def main(argv=None):
    args = parse_args(argv)
    try:
        with user_errors('bidl-train') as errors:
            from bidl_train.engine import build_runner
            from bidl_train.engine.dist import (dist_timeout, launcher_rank,
                                                peer_failures)
            from bidl_train.engine.runner import (check_work_dir,
                                                  discard_failed_run_dirs,
                                                  disk_errors)
            from bidl_train.engine.work_dir_lock import lock_work_dir
            cfg = merge_args(
                load_config(args.config, args.cfg_options, args.data_root),
                args)
            errors.cfg = cfg  # to name config keys in error messages
            check_work_dir(cfg.work_dir)
            # one run per work dir; the ranks of one job share rank 0's lock
            if launcher_rank(cfg.launcher) == 0:
                lock_work_dir(cfg.work_dir)
            with peer_failures(dist_timeout(cfg)), \
                    disk_errors(cfg.work_dir), \
                    discard_failed_run_dirs(cfg.work_dir):
                build_runner(cfg).train()  # no name: freed before closing
    finally:
        # every rank, on success or error (see close_distributed)
        from bidl_train.engine.dist import close_distributed
        close_distributed()


if __name__ == '__main__':
    main()
