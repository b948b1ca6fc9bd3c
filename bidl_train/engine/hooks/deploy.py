"""Deploy the trained model at the end of training.

Enabled by a top-level config key, for example::

    deploy = dict(targets=['onnx', 'torchscript'], precision='fp32', verify=8)

which :func:`bidl_train.engine.build_runner` turns into this hook. The model
as it is at the end of training is exported to
``<work_dir>/deploy/<target>/`` and verified on the first ``verify``
validation samples, exactly as ``bidl-deploy`` would do from the last
checkpoint.
A target that refuses the model (a feature it cannot express) is reported
as an error in the log; the other targets still run and the trained
checkpoints are untouched.
"""
import os.path as osp

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from bidl_train.errors import BidlError, ConfigError
from bidl_train.registry import HOOKS


@HOOKS.register_module()
class DeployHook(Hook):
    """Export and verify the trained model for each target after training.

    Args:
        targets (list[str]): registered deploy targets.
        precision (str): 'fp32', 'fp16' or 'int8'.
        verify (int): number of validation samples to verify on (and to
            measure the accuracy change of fp16/int8 on).
    """
    priority = 'VERY_LOW'

    def __init__(self, targets=('onnx', ), precision='fp32', verify=8):
        if isinstance(targets, str):
            targets = [targets]
        if not targets:
            raise ConfigError('deploy.targets is empty; name at least one '
                              'target (bidl-deploy --list shows them)')
        from bidl_train.deploy import get_target
        for name in targets:
            get_target(name)  # an unknown name fails before training starts
        if precision != 'fp32' and verify < 1:
            raise ConfigError(f'deploy.precision={precision!r} needs '
                              'deploy.verify > 0 validation samples to '
                              'measure the accuracy change on')
        self.targets = list(targets)
        self.precision = precision
        self.verify = verify
        self.reports = {}

    def after_train(self, runner):
        if runner.rank != 0:
            return
        from bidl_train.deploy import deploy
        from bidl_train.deploy.report import format_summary
        from bidl_train.deploy.samples import verification_batch
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        was_training = model.training
        model.eval()
        try:
            x_seq, labels, split = verification_batch(runner.cfg, model,
                                                      self.verify)
            for name in self.targets:
                out = osp.join(runner.work_dir, 'deploy', name)
                try:
                    report = deploy(model, name, x_seq, out,
                                    labels=labels, precision=self.precision,
                                    verify_samples=self.verify > 0,
                                    split=split)
                except BidlError as err:
                    runner.logger.error(f'deploy to {name} refused: {err}')
                    self.reports[name] = dict(status='refused',
                                              reason=str(err))
                    continue
                self.reports[name] = report
                runner.logger.info(f'deploy to {name}:\n' +
                                   format_summary(report))
        finally:
            model.train(was_training)
