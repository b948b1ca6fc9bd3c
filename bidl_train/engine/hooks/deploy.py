"""Deploy the trained model at the end of training.

Enabled by a top-level config key, for example::

    deploy = dict(targets=['onnx', 'torchscript'], precision='fp32', verify=8)

which :func:`bidl_train.engine.build_runner` turns into this hook. The model
as it is at the end of training is exported to
``<work_dir>/deploy/<target>/`` and verified on the first ``verify``
validation samples by :func:`bidl_train.engine.deploy.deploy_from_config`,
the very function ``bidl-deploy`` runs from a checkpoint. With
``random_inputs=N`` a validation split that is not on disk is replaced by N
random inputs of the config's input shape (the report says so), as
``bidl-deploy --random-inputs N`` does.
A target that refuses the model (a feature it cannot express) is reported
as an error in the log; the other targets still run and the trained
checkpoints are untouched.

Each report names the weights it was made from: the checkpoint that
``<work_dir>/last_checkpoint`` names when it holds exactly the in-memory
weights (path, sha256, size), else "in-memory weights at the end of
training (epoch N, iteration M)".
"""
import os.path as osp

import torch

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
        random_inputs (int): when the validation split is not on disk,
            verify on this many random inputs instead (None: refuse).
    """
    priority = 'VERY_LOW'

    def __init__(self, targets=('onnx', ), precision='fp32', verify=8,
                 random_inputs=None):
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
        if random_inputs is not None and (
                not isinstance(random_inputs, int) or random_inputs < 1):
            raise ConfigError(f'deploy.random_inputs={random_inputs!r}: give '
                              'a number of random inputs of at least 1 (or '
                              'None)')
        self.random_inputs = random_inputs
        self.reports = {}

    def after_train(self, runner):
        if runner.rank != 0:
            return
        from bidl_train.deploy.report import format_summary
        from ..deploy import deploy_from_config
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        source = weights_source(runner, model)
        for name in self.targets:
            out = osp.join(runner.work_dir, 'deploy', name)
            try:
                report = deploy_from_config(
                    runner.cfg, name, out, model=model, source=source,
                    precision=self.precision, verify=self.verify,
                    random_inputs=self.random_inputs)
            except BidlError as err:
                runner.logger.error(f'deploy to {name} refused: {err}')
                self.reports[name] = dict(status='refused', reason=str(err))
                continue
            self.reports[name] = report
            runner.logger.info(f'deploy to {name}:\n' +
                               format_summary(report))


def _last_checkpoint(work_dir):
    marker = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(marker):
        return None
    with open(marker) as f:
        path = f.read().strip()
    return path if path and osp.isfile(path) else None


def _holds(path, model):
    """Whether the checkpoint ``path`` holds exactly ``model``'s weights."""
    from bidl_train.engine.checkpoint import safe_load
    try:
        ckpt = safe_load(path)
    except BidlError:
        return False
    state = ckpt.get('state_dict') if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        return False
    state = {k[len('module.'):] if k.startswith('module.') else k: v
             for k, v in state.items()}
    mine = model.state_dict()
    return state.keys() == mine.keys() and all(
        torch.is_tensor(state[k]) and state[k].shape == v.shape
        and torch.equal(state[k].cpu(), v.detach().cpu())
        for k, v in mine.items())


def weights_source(runner, model):
    """The report's ``source`` for a deploy of ``model`` at the end of
    training: the last saved checkpoint if it holds exactly these weights
    (compared tensor by tensor), else the in-memory weights by epoch."""
    from bidl_train.deploy.report import checkpoint_source, memory_source
    config = getattr(runner.cfg, 'filename', None)
    when = f'epoch {runner.epoch}, iteration {runner.iter}'
    path = _last_checkpoint(runner.work_dir)
    if path is not None and _holds(path, model):
        return checkpoint_source(
            path, config, note=f'in-memory weights at the end of training '
            f'({when}), equal to this checkpoint')
    return memory_source(
        f'in-memory weights at the end of training ({when}); no saved '
        'checkpoint holds exactly these weights', config)
