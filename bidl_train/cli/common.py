"""Helpers shared by the three commands: config loading and error reporting."""
import difflib
import os.path as osp
import re
import sys
from contextlib import contextmanager, nullcontext

import yaml
from mmengine.config import Config, DictAction
from mmengine.fileio import register_handler
from mmengine.fileio.handlers import YamlHandler

from bidl_train.engine.runner import KNOWN_TOP_LEVEL_KEYS
from bidl_train.errors import BidlError, ConfigError
from bidl_train.registry import (DATASETS, DEPLOY_TARGETS, HOOKS,
                                 LEARNING_RULES, METRICS, MODELS, TRANSFORMS)

from .config_safety import (check_data_config, data_bases_only,
                            is_data_config, restrict_registry_imports)

_REGISTRIES = (MODELS, DATASETS, TRANSFORMS, METRICS, HOOKS, LEARNING_RULES,
               DEPLOY_TARGETS)


def add_cfg_options(parser):
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config keys, e.g. '
        '"train_cfg.max_epochs=5 model.backbone.channels=[16,32]"; '
        'quote values with spaces or lists.')


class _SafeYamlHandler(YamlHandler):
    """mmengine's YAML handler with PyYAML's safe loader.

    mmengine 0.10.7 parses YAML with the full loader, which constructs
    arbitrary Python objects (``!!python/object/apply:os.system``). Configs
    from others must be data: tags that build objects are refused.
    """

    def load_from_fileobj(self, file, **kwargs):
        kwargs['Loader'] = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)
        return yaml.load(file, **kwargs)

    # Dumping must match: the Runner copies a YAML config into the work dir,
    # and mmengine's dumper tags tuples ``!!python/tuple``, which the safe
    # loader cannot read back (``bidl-test work_dir/x.yaml`` would fail).
    def dump_to_str(self, obj, **kwargs):
        kwargs.setdefault('Dumper', _DataDumper)
        try:
            return yaml.dump(obj, **kwargs)
        except yaml.representer.RepresenterError:
            # objects that are not data (a Python config written as YAML):
            # keep mmengine's tagged output rather than fail the run
            kwargs['Dumper'] = yaml.Dumper
            return yaml.dump(obj, **kwargs)

    def dump_to_fileobj(self, obj, file, **kwargs):
        file.write(self.dump_to_str(obj, **kwargs))


class _DataDumper(getattr(yaml, 'CSafeDumper', yaml.SafeDumper)):
    """PyYAML's safe dumper, writing tuples as plain lists."""


_DataDumper.add_representer(tuple,
                            lambda dumper, data: dumper.represent_list(data))


def install_safe_yaml():
    """Make every YAML load through mmengine (bases included) safe."""
    register_handler(['yaml', 'yml'])(_SafeYamlHandler)


def load_config(path, cfg_options=None):
    """Read a Python or YAML config, apply ``--cfg-options``.

    Python configs are code and run as such. YAML (and JSON) configs are
    data: parsed with the safe loader (see :class:`_SafeYamlHandler`), their
    bases must be data too, and the merged config may name only registered
    types, before and after the overrides (see :mod:`.config_safety`).
    """
    if not osp.isfile(path):
        raise ConfigError(f'config file {path} does not exist')
    install_safe_yaml()
    data = is_data_config(path)
    restrict_registry_imports(data)
    try:
        with data_bases_only(path) if data else nullcontext():
            # custom_imports would import modules during loading: a data
            # config is refused for it below, before anything is imported
            cfg = Config.fromfile(path, import_custom_modules=not data)
    except BidlError:
        raise
    except Exception as err:
        raise ConfigError(f'cannot read config {path}: {err}') from None
    if data:
        check_data_config(cfg, path)
    if cfg_options:
        _check_override_paths(cfg, cfg_options)
        cfg.merge_from_dict(cfg_options)
        if data:  # overrides may add types too; the same rule holds
            check_data_config(cfg, f'{path} with --cfg-options')
    cfg.setdefault('default_scope', 'bidl_train')
    return cfg


def _check_override_paths(cfg, options):
    """A ``--cfg-options`` key whose parent path does not exist is a typo."""
    for key in options:
        parts = key.split('.')
        node, walked = cfg, []
        for part in parts[:-1]:
            walked.append(part)
            if isinstance(node, (list, tuple)) and part.isdigit():
                node = node[int(part)] if int(part) < len(node) else None
            elif hasattr(node, 'get'):
                node = node.get(part)
            else:
                node = None
            if node is None and len(walked) == 1 and \
                    walked[0] in KNOWN_TOP_LEVEL_KEYS:
                break  # a known section the config leaves out: create it
            if node is None:
                siblings = []
                parent = _get_path(cfg, walked[:-1])
                if hasattr(parent, 'keys'):
                    siblings = list(parent.keys())
                close = difflib.get_close_matches(part, siblings, n=1)
                hint = f'; did you mean {".".join(walked[:-1] + close)!r}?' \
                    if close else ''
                raise ConfigError(
                    f'--cfg-options {key}: the config has no key '
                    f'{".".join(walked)!r}{hint}')


def _get_path(cfg, parts):
    node = cfg
    for part in parts:
        node = node[int(part)] if isinstance(node, (list, tuple)) else \
            node.get(part)
    return node


def _suggest_registered(message):
    """Add close registered names to mmengine's 'not in the registry' error."""
    match = re.search(r'(\S+) is not in the (\S+) registry', message)
    if not match:
        return message
    name = match.group(1).strip('`\'"')
    names = set()
    for registry in _REGISTRIES:
        names.update(registry.module_dict)
        if registry.parent is not None:
            names.update(registry.parent.module_dict)
    close = difflib.get_close_matches(name, sorted(names), n=3, cutoff=0.5)
    hint = f' Did you mean {", ".join(close)}?' if close else ''
    return (f'unknown type {name!r} in the config ({match.group(2)} '
            f'registry).{hint}')


@contextmanager
def user_errors(command):
    """Turn user mistakes into a one-paragraph message and exit code 2.

    Programming errors keep their traceback (they are bugs to report).
    """
    try:
        yield
    except BidlError as err:
        _fail(command, str(err))
    except KeyError as err:
        text = str(err.args[0]) if err.args else str(err)
        if 'registry' in text:
            _fail(command, _suggest_registered(text))
        raise
    except TypeError as err:
        # mmengine re-raises constructor errors as "class `X` in m: ..."
        text = str(err)
        if 'unexpected keyword argument' in text or \
                'missing' in text and 'required positional' in text:
            _fail(command, f'config error: {text}')
        raise
    except Exception as err:
        # errors raised inside a registry build are re-wrapped by mmengine;
        # look for our own error type in the chain before giving up
        cause = err
        while cause is not None:
            if isinstance(cause, BidlError):
                _fail(command, str(cause))
            cause = cause.__cause__ or cause.__context__
        raise


def _fail(command, message):
    # an error raised in a DataLoader worker is rebuilt by torch from the
    # text 'Caught X in DataLoader worker process N.\nOriginal Traceback
    # ...\nbidl_train.errors.X: <message>': keep only <message>
    if '\nOriginal Traceback' in message:
        last = message.rstrip().splitlines()[-1]
        message = last.split(': ', 1)[-1]
    sys.stderr.write(f'{command}: error: {message}\n')
    raise SystemExit(2)
