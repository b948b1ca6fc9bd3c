"""``bidl-deploy CONFIG CHECKPOINT --target T``: export and verify a model.

Builds the model from the config, loads the checkpoint's weights (safely,
``weights_only``), takes the first ``--verify N`` samples of the config's
validation split (test split when it has none) through the model's own
data preprocessor, and hands everything to :func:`bidl_train.deploy.deploy`.
With ``--precision fp16|int8`` those N labelled samples measure the
accuracy change: the report states deployed vs PyTorch top-1 on them, so
``--verify 0`` is refused there. ``--list`` shows the registered targets.
Exit status: 0 verified (or exported at reduced precision), 1 when the
deployed artefact disagrees with PyTorch, 2 for user errors.
"""
import argparse
import os
import os.path as osp
import sys

from bidl_train.errors import CheckpointError, ConfigError

from .common import add_cfg_options, add_data_root, load_config, user_errors


def build_parser():
    parser = argparse.ArgumentParser(
        prog='bidl-deploy',
        description='Export a trained spiking network for a runtime and '
        'verify it against PyTorch')
    parser.add_argument('config', nargs='?', help='config file (.py/.yaml)')
    parser.add_argument('checkpoint', nargs='?',
                        help='checkpoint (.pth) or http(s) URL')
    parser.add_argument('--target', help='deployment target (see --list)')
    parser.add_argument(
        '--out', help='output folder (default '
        'work_dirs/<config stem>/deploy/<target>)')
    parser.add_argument(
        '--precision', default='fp32', choices=['fp32', 'fp16', 'int8'],
        help='numbers of the deployed model: fp32 (default; verified to '
        'agree with PyTorch), fp16 (everything in half precision) or int8 '
        '(conv/linear weights quantised per output channel, activations '
        'and states fp32). fp16/int8 change the numbers: the report gives '
        'deployed vs PyTorch top-1 on the --verify samples. A target that '
        'cannot run a precision refuses it')
    parser.add_argument(
        '--verify', type=int, default=8, metavar='N',
        help='verify on the first N validation samples and report deployed '
        'vs PyTorch top-1 on them (0: export only, fp32 only; the first '
        'sample is still used as the tracing example)')
    parser.add_argument('--list', action='store_true',
                        help='list the registered targets and exit')
    add_data_root(parser)
    add_cfg_options(parser)
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def _target_list():
    from bidl_train.deploy import list_targets
    return '\n'.join(f'  {name:<12} {desc}' for name, desc in list_targets())


def _load_weights(model, path):
    """Load ``path`` (local file or http(s) URL) into ``model``, safely."""
    from bidl_train.engine.checkpoint import (install_safe_loader,
                                              load_checkpoint_file)
    # the same allow-listed loader for anything mmengine might load too
    install_safe_loader()
    ckpt = load_checkpoint_file(path)
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f'{path}: no state_dict in the checkpoint')
    state = {k[len('module.'):] if k.startswith('module.') else k: v
             for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f'{path} does not match the model of the config: missing keys '
            f'{missing[:5]}, unexpected keys {unexpected[:5]}; was it '
            'trained with this config?')


def _read_checkpoint(model, path, config):
    """Load ``path`` into ``model`` and return the report's ``source`` (its
    sha256 is of the very bytes loaded: a file that changes meanwhile, say
    a training run still saving it, is refused)."""
    from bidl_train.deploy.report import checkpoint_source

    def identity():
        st = os.stat(path)
        return st.st_ino, st.st_size, st.st_mtime_ns
    before = identity()
    source = checkpoint_source(path, config)
    _load_weights(model, path)
    if identity() != before:
        raise CheckpointError(
            f'checkpoint {path} changed while bidl-deploy read it (is a '
            'training run still saving it?); run bidl-deploy again once it '
            'is complete')
    return source


def main(argv=None):
    args = parse_args(argv)
    with user_errors('bidl-deploy') as errors:
        if args.list:
            print('registered deploy targets:\n' + _target_list())
            return 0
        if not args.config or not args.checkpoint or not args.target:
            raise ConfigError('usage: bidl-deploy CONFIG CHECKPOINT --target '
                              'T; registered targets:\n' + _target_list())
        from mmengine.registry import init_default_scope

        from bidl_train.deploy import deploy, get_target
        from bidl_train.deploy.report import format_summary
        from bidl_train.deploy.samples import verification_batch
        from bidl_train.registry import MODELS
        get_target(args.target)  # unknown target: fail before any work
        if args.precision != 'fp32' and args.verify < 1:
            raise ConfigError(
                f'--precision {args.precision} changes the numbers: give '
                '--verify N (N > 0) validation samples to measure the '
                'accuracy change on')
        cfg = load_config(args.config, args.cfg_options, args.data_root)
        errors.cfg = cfg
        init_default_scope(cfg.get('default_scope', 'bidl_train'))
        from bidl_train.engine.checkpoint import (check_checkpoint_source,
                                                  is_url, local_checkpoint)
        check_checkpoint_source(args.checkpoint)  # before building anything
        model = MODELS.build(cfg.model)
        # an http(s) URL is read from a downloaded copy; the report names it
        with local_checkpoint(args.checkpoint) as local_path:
            source = _read_checkpoint(model, local_path, args.config)
        if is_url(args.checkpoint):
            source['checkpoint']['path'] = args.checkpoint
        model.eval()
        x_seq, labels, split = verification_batch(cfg, model, args.verify)
        out = args.out or osp.join(
            'work_dirs', osp.splitext(osp.basename(args.config))[0],
            'deploy', args.target)
        report = deploy(model, args.target, x_seq, out,
                        labels=labels, precision=args.precision,
                        verify_samples=args.verify > 0, split=split,
                        source=source)
        print(format_summary(report))
        print(f'report written to {osp.join(out, "report.json")}')
        if report['status'] == 'MISMATCH':
            sys.stderr.write('bidl-deploy: the deployed model disagrees with '
                             'PyTorch beyond float rounding; see the report\n')
            return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
