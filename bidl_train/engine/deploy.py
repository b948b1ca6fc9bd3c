"""Deploy from a config: the one orchestration of ``bidl-deploy`` and
:class:`~bidl_train.engine.hooks.deploy.DeployHook`.

:func:`deploy_from_config` loads the weights (a checkpoint into a model
built from the config, or the model a training run holds), picks the
verification samples (:mod:`bidl_train.deploy.samples`), and hands them to
:func:`bidl_train.deploy.deploy`, which lowers, exports, verifies and puts
the output folder in place at once (:mod:`bidl_train.deploy.outdir`).

It lives in ``engine`` rather than ``deploy`` because reading checkpoints
(:mod:`.checkpoint`) is engine code, and ``deploy`` never imports upwards.
"""
import os

from bidl_train.errors import CheckpointError, ConfigError

__all__ = ['deploy_from_config', 'read_checkpoint']


def read_checkpoint(model, source, config=None):
    """Load checkpoint ``source`` (a local path or http(s) URL) into
    ``model`` and return the report's ``source`` section.

    The sha256 in it is of the very bytes loaded: a local file that changes
    meanwhile (a training run still saving it) is refused. A URL is read
    from a downloaded copy and the report names the URL.
    """
    from bidl_train.deploy.report import checkpoint_source
    from .checkpoint import is_url, load_model_weights, local_checkpoint
    with local_checkpoint(source) as path:
        def identity():
            st = os.stat(path)
            return st.st_ino, st.st_size, st.st_mtime_ns
        before = identity()
        report_source = checkpoint_source(path, config)
        load_model_weights(model, path)
        if identity() != before:
            raise CheckpointError(
                f'checkpoint {path} changed while bidl-deploy read it (is a '
                'training run still saving it?); run bidl-deploy again once '
                'it is complete')
    if is_url(source):
        report_source['checkpoint']['path'] = source
    return report_source


def deploy_from_config(cfg, target, out_dir, checkpoint=None, model=None,
                       source=None, config_path=None, precision='fp32',
                       verify=8, random_inputs=None):
    """Export the model of ``cfg`` for ``target`` into ``out_dir``, verified.

    Args:
        cfg (Config): the config (its default scope already initialised).
        target (str): a registered deploy target.
        out_dir (str): the output folder, replaced as a whole.
        checkpoint (str): weights to load into a model built from
            ``cfg.model`` (a local path or an http(s) URL), or None with
            ``model``.
        model: a model that already holds its weights (a training run's);
            ``source`` then says which weights they are.
        config_path (str): the config file, named in the report.
        precision (str): ``fp32``, ``fp16`` or ``int8``.
        verify (int): verification samples (0: export only, one sample is
            still the tracing example).
        random_inputs (int): when the config's validation/test split is not
            on disk, verify on this many random inputs of the config's
            input shape instead (None: refuse, naming the option).

    Returns:
        dict: the report (also in ``out_dir/report.json``). The model's
        training mode is restored.
    """
    from bidl_train.deploy import deploy
    from bidl_train.deploy.samples import verification_samples
    if model is None:
        from bidl_train.registry import MODELS
        from .checkpoint import check_checkpoint_source
        check_checkpoint_source(checkpoint)  # before building anything
        model = MODELS.build(cfg.model)
        source = read_checkpoint(model, checkpoint, config_path)
    was_training = model.training
    model.eval()
    try:
        x_seq, labels, split, inputs = verification_samples(
            cfg, model, verify, random_inputs)
        if labels is None and precision != 'fp32':
            raise ConfigError(
                f'precision {precision} is judged by the accuracy change on '
                f'labelled samples, and random inputs have none ('
                f"{inputs['reason']}); put the data in place")
        return deploy(model, target, x_seq, out_dir, labels=labels,
                      precision=precision, verify_samples=verify > 0,
                      split=split, source=source, inputs=inputs)
    finally:
        model.train(was_training)
