"""What a dataset config states about time steps, read without data.

Every dataset class answers ``cls.stated_num_steps(cfg)``: the T its
samples will have, from the config's arguments alone (None when only the
files can tell, or when a sample has no time axis). Tools use it through
:func:`bidl_train.utils.time_steps.config_num_steps` when the data is not
on disk; a built dataset says the same in ``metainfo['num_steps']``.
"""
import inspect

from bidl_train.utils.time_steps import dataset_config_num_steps

__all__ = ['config_arguments', 'wrapped_num_steps']


def config_arguments(cls, cfg):
    """The constructor arguments ``cfg`` gives ``cls``: the signature's
    defaults, overridden by the config's keys (``type`` dropped). Keys a
    subclass passes on through ``**kwargs`` appear as given; a missing one
    means its default, which the caller supplies."""
    args = {
        name: param.default
        for name, param in inspect.signature(cls.__init__).parameters.items()
        if param.default is not inspect.Parameter.empty
    }
    args.update({key: value for key, value in cfg.items() if key != 'type'})
    return args


def wrapped_num_steps(dataset):
    """T a dataset wrapper's inner ``dataset`` (a config or an object)
    states: wrappers keep the steps of what they wrap."""
    if isinstance(dataset, dict):
        return dataset_config_num_steps(dataset)
    return (getattr(dataset, 'metainfo', None) or {}).get('num_steps')
