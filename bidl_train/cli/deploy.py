"""``bidl-deploy CONFIG CHECKPOINT --target T``: export and verify a model.

Builds the model from the config, loads the checkpoint's weights (safely,
``weights_only``), takes the first ``--verify N`` samples of the config's
validation split (test split when it has none) through the model's own
data preprocessor, and exports and verifies: all of that is
:func:`bidl_train.engine.deploy.deploy_from_config`, which the training
run's DeployHook calls too. When that split is not on disk, bidl-deploy
refuses in one line unless ``--random-inputs [N]`` allows N random inputs
of the config's input shape (agreement with PyTorch only; the report says
so). With ``--precision fp16|int8`` those N labelled samples measure the
accuracy change: the report states deployed vs PyTorch top-1 on them, so
``--verify 0`` is refused there. ``--list`` shows the registered targets.

``bidl-deploy CONFIG [CHECKPOINT] --check --target T`` exports nothing: it
lists every layer the target cannot express, each with the config change
that removes it (:mod:`bidl_train.deploy.check`).

Exit status: 0 verified (or exported at reduced precision; with --check:
deployable), 1 when the deployed artefact disagrees with PyTorch, 2 for
user errors (with --check: blockers found).
"""
import argparse
import os.path as osp
import sys

from bidl_train.errors import ConfigError

from .common import add_cfg_options, add_data_root, load_config, user_errors


#: ``--random-inputs`` without N: as many as ``--verify``
_RANDOM_DEFAULT = -1


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
    parser.add_argument(
        '--random-inputs', type=int, nargs='?', const=_RANDOM_DEFAULT,
        metavar='N', help='when the validation/test split is not on disk, '
        'verify on N random inputs of the config\'s input shape (default N: '
        '--verify) instead of refusing; they show agreement with PyTorch, '
        'not accuracy, and the report says so')
    parser.add_argument(
        '--check', action='store_true',
        help='check only (no checkpoint or data needed; random weights '
        'unless CHECKPOINT is given): list every layer the target cannot '
        'express, each with the config change that removes it; exit 0 '
        'when deployable, 2 otherwise')
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


def _random_count(args):
    """N of ``--random-inputs [N]`` (None: not given; bare: --verify's)."""
    if args.random_inputs is None:
        return None
    if args.random_inputs == _RANDOM_DEFAULT:
        return max(args.verify, 1)
    if args.random_inputs < 1:
        raise ConfigError(f'--random-inputs {args.random_inputs}: give a '
                          'number of random inputs of at least 1')
    return args.random_inputs


def _check(args, errors):
    """``--check``: every blocker of the target at once, each with the
    config change that removes it; exit 0 deployable, 2 otherwise."""
    from mmengine.registry import init_default_scope

    from bidl_train.deploy import get_target
    from bidl_train.deploy.check import check_config, format_check
    from bidl_train.registry import MODELS
    if not args.config or not args.target:
        raise ConfigError('usage: bidl-deploy CONFIG [CHECKPOINT] --check '
                          '--target T; registered targets:\n' +
                          _target_list())
    get_target(args.target)
    cfg = load_config(args.config, args.cfg_options, args.data_root)
    errors.cfg = cfg
    init_default_scope(cfg.get('default_scope', 'bidl_train'))
    model, weights = None, 'random weights'
    if args.checkpoint:
        from bidl_train.engine.checkpoint import load_model_weights
        model = MODELS.build(cfg.model)
        load_model_weights(model, args.checkpoint)
        weights = f'weights of {args.checkpoint}'
    result = check_config(cfg, args.target, args.precision, model)
    print(format_check(result, args.config, args.target, weights))
    if not result.deployable:
        sys.stderr.write(f'bidl-deploy: {len(result.blockers)} blocker(s) '
                         f'keep {args.config} from deploying to '
                         f'{args.target}; see the list above\n')
        return 2
    return 0


def main(argv=None):
    args = parse_args(argv)
    with user_errors('bidl-deploy') as errors:
        if args.list:
            print('registered deploy targets:\n' + _target_list())
            return 0
        if args.check:
            return _check(args, errors)
        if not args.config or not args.checkpoint or not args.target:
            raise ConfigError('usage: bidl-deploy CONFIG CHECKPOINT --target '
                              'T; registered targets:\n' + _target_list())
        from mmengine.registry import init_default_scope

        from bidl_train.deploy import get_target
        from bidl_train.deploy.report import format_summary
        from bidl_train.engine.deploy import deploy_from_config
        get_target(args.target)  # unknown target: fail before any work
        if args.precision != 'fp32' and args.verify < 1:
            raise ConfigError(
                f'--precision {args.precision} changes the numbers: give '
                '--verify N (N > 0) validation samples to measure the '
                'accuracy change on')
        random_inputs = _random_count(args)
        cfg = load_config(args.config, args.cfg_options, args.data_root)
        errors.cfg = cfg
        init_default_scope(cfg.get('default_scope', 'bidl_train'))
        out = args.out or osp.join(
            'work_dirs', osp.splitext(osp.basename(args.config))[0],
            'deploy', args.target)
        report = deploy_from_config(
            cfg, args.target, out, checkpoint=args.checkpoint,
            config_path=args.config, precision=args.precision,
            verify=args.verify, random_inputs=random_inputs)
        print(format_summary(report))
        print(f'report written to {osp.join(out, "report.json")}')
        if report['status'] == 'MISMATCH':
            sys.stderr.write('bidl-deploy: the deployed model disagrees with '
                             'PyTorch beyond float rounding; see the report\n')
            return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
