"""Helpers shared by the three commands: config loading and error reporting."""
import difflib
import inspect
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

from .config_safety import (_known_names, _registries,
                            check_data_config, data_bases_only,
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
        'quote values with spaces or lists. _data_root=DIR is the same as '
        '--data-root DIR for the datasets that use the config\'s _data_root')


#: The dataloaders whose datasets ``--data-root`` points at a folder.
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def add_data_root(parser):
    parser.add_argument(
        '--data-root',
        metavar='DIR',
        help='read the data from DIR: sets data_root of the train, val and '
        'test datasets (inside dataset wrappers such as ConcatDataset and '
        'RepeatDataset too); more specific --cfg-options win')


def apply_data_root(cfg, root):
    """Point every dataset of the three dataloaders at ``root``."""
    for name in LOADERS:
        loader = cfg.get(name)
        if isinstance(loader, dict) and loader.get('dataset') is not None:
            _set_data_root(loader['dataset'], root)
    if '_data_root' in cfg:
        cfg._data_root = root  # the dumped config says what was used


def _set_data_root(dataset, root):
    """Set ``data_root`` on the datasets that read files, not on wrappers
    (ConcatDataset's ``datasets``, RepeatDataset's ``dataset``, ...)."""
    if isinstance(dataset, (list, tuple)):
        for item in dataset:
            _set_data_root(item, root)
        return
    if not isinstance(dataset, dict):
        return  # a dataset object built in a Python config: leave it
    inner = [dataset[key] for key in ('dataset', 'datasets') if key in dataset]
    if inner:
        for item in inner:
            _set_data_root(item, root)
    else:
        dataset['data_root'] = root


def _override_data_root(cfg, root, path):
    """``--cfg-options _data_root=DIR``: the config file substituted its
    ``_data_root`` variable when it was read, so setting the key alone would
    change nothing. Replace what the variable became instead: every string
    equal to its old value, or a path under it."""
    if '_data_root' not in cfg:
        raise ConfigError(
            f'--cfg-options _data_root: {path} has no _data_root variable; '
            'use --data-root DIR to point every dataset at DIR')
    old = cfg._data_root
    if isinstance(old, str):
        _replace_prefix(cfg, old.rstrip('/'), str(root).rstrip('/'))
    cfg._data_root = root


def _replace_prefix(node, old, new):
    items = node.items() if hasattr(node, 'items') else enumerate(node)
    for key, value in list(items):
        if isinstance(value, str) and (value.rstrip('/') == old
                                       or value.startswith(old + '/')):
            node[key] = new + value.rstrip('/')[len(old):]
        elif isinstance(value, (dict, list)) or hasattr(value, 'items'):
            _replace_prefix(value, old, new)


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


def _check_num_steps_override(cfg):
    """``--cfg-options num_steps=N`` must reach the data. Config variables
    are filled in when the file is read, so the override changes only the
    top-level key, which training never reads: refuse it in one line unless
    the representation/dataset/encoder keys were set to the same N."""
    from bidl_train.utils.time_steps import config_num_steps
    try:
        config_num_steps(cfg)
    except ConfigError as err:
        raise ConfigError(
            f'{err} (--cfg-options num_steps=N changes only the top-level '
            'key: config variables are filled in when the file is read, so '
            'also set the key that makes the steps, e.g. '
            '{train,val,test}_dataloader.dataset.representation.num_steps=N)'
        ) from None


def load_config(path, cfg_options=None, data_root=None):
    """Read a Python or YAML config, apply ``--data-root``, then
    ``--cfg-options`` (the more specific overrides win).

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
    if data_root is not None:
        apply_data_root(cfg, data_root)
    if cfg_options:
        cfg_options = dict(cfg_options)
        if '_data_root' in cfg_options:
            _override_data_root(cfg, cfg_options.pop('_data_root'), path)
        _check_override_paths(cfg, cfg_options)
        cfg.merge_from_dict(cfg_options)
        if 'num_steps' in cfg_options:
            _check_num_steps_override(cfg)
        if data:  # overrides may add types too; the same rule holds
            check_data_config(cfg, f'{path} with --cfg-options')
    if not data:  # (a data config was checked above, more strictly)
        check_registered_types(cfg, path)
    cfg.setdefault('default_scope', 'bidl_train')
    return cfg


def check_registered_types(cfg, source):
    """Every ``type`` name in the config is registered somewhere.

    mmengine would find out only when it builds that part (the optimizer
    after the data is loaded, a neuron deep inside the model), some parts
    with a traceback. Dotted names (``pkg.module.Class``) and classes are
    left to mmengine: a Python config may name any importable callable.
    """
    known = None
    for where, node in _dicts(cfg.to_dict()):
        value = node.get('type')
        if not isinstance(value, str) or '.' in value:
            continue
        if known is None:
            known = _known_names()[None]
        if value in known:
            continue
        close = difflib.get_close_matches(value, sorted(known), n=3,
                                          cutoff=0.6)
        hint = f'; did you mean {", ".join(close)}?' if close else (
            '; no registered type has a similar name')
        raise ConfigError(f'{source}: {where}.type={value!r} is not a '
                          f'registered bidl-train/mmengine type{hint}')


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


class ErrorContext:
    """What :func:`user_errors` knows when it explains an error: the
    command sets ``cfg`` once the config is loaded."""
    cfg = None


@contextmanager
def user_errors(command):
    """Turn user mistakes into a one-paragraph message and exit code 2.

    Yields an :class:`ErrorContext`; with its ``cfg`` set, a constructor
    argument the class does not take is named by its config path with the
    closest argument names the class does take. Programming errors keep
    their traceback (they are bugs to report).
    """
    context = ErrorContext()
    try:
        yield context
    except BidlError as err:
        _fail(command, explain_arguments(str(err), context.cfg))
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
            _fail(command, explain_arguments(f'config error: {text}',
                                             context.cfg))
        raise
    except Exception as err:
        # errors raised inside a registry build are re-wrapped by mmengine;
        # look for our own error type in the chain before giving up
        cause = err
        while cause is not None:
            if isinstance(cause, BidlError):
                _fail(command, explain_arguments(str(cause), context.cfg))
            cause = cause.__cause__ or cause.__context__
        raise


# ---------------------------------------------------------------------------
# "did you mean" for constructor arguments
# ---------------------------------------------------------------------------
_UNEXPECTED = re.compile(
    r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'")
_MISSING = re.compile(r"(\w+)\.__init__\(\) missing \d+ required "
                      r"positional arguments?: (.+)$", re.M)


def explain_arguments(message, cfg):
    """Add the config path and the valid names to a constructor error.

    ``X.__init__() got an unexpected keyword argument 'k'`` becomes
    ``X takes no argument 'k' (config key train_cfg.k); did you mean
    'k2'?``. Messages of another kind, or without a config, are returned
    as they are.
    """
    if cfg is None:
        return message
    unexpected = _UNEXPECTED.search(message)
    if unexpected:
        explained = _explain_unexpected(cfg, *unexpected.groups())
        return message.replace(unexpected.group(0), explained) \
            if explained else message
    missing = _MISSING.search(message)
    if missing:
        where = _paths_of_type(cfg, missing.group(1))
        if where:
            return (f'{message}; add them to the config at '
                    f'{" or ".join(where)}')
    return message


def _explain_unexpected(cfg, class_name, key):
    places = [(where, node) for where, node in _dicts(cfg.to_dict())
              if key in node]
    # several sections may use the key (num_classes): the one whose type
    # is (a subclass of) the class the error names
    matching = [(where, node) for where, node in places
                if _is_class(_type_of(node), class_name)]
    places = matching or places
    if not places:
        return None
    where, node = places[0]
    cls = _type_of(node) or _find_class(class_name)
    valid = _init_arguments(cls) if cls is not None else []
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.6)
    text = (f'{class_name} takes no argument {key!r} (config key '
            f'{where}.{key})')
    if close:
        return text + f'; did you mean {", ".join(map(repr, close))}?'
    if valid:
        return text + f'; it takes {", ".join(valid)}'
    return text


def _dicts(node, where=''):
    """Yield ``(path, dict)`` for every dict in a config, depth first."""
    if isinstance(node, dict):
        if where:
            yield where, node
        for key, value in node.items():
            yield from _dicts(value, f'{where}.{key}' if where else key)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _dicts(value, f'{where}.{i}')


def _paths_of_type(cfg, class_name):
    return [where for where, node in _dicts(cfg.to_dict())
            if _is_class(_type_of(node), class_name)]


def _type_of(node):
    kind = node.get('type')
    if isinstance(kind, type):
        return kind
    if isinstance(kind, str):
        return _find_class(kind.rpartition('.')[2])
    return None


def _is_class(cls, name):
    return cls is not None and any(c.__name__ == name for c in cls.__mro__)


def _find_class(name):
    """The class registered as ``name`` in any registry we build from."""
    for registry in _registries():
        registry.import_from_location()
        found = registry.module_dict.get(name)
        if isinstance(found, type):
            return found
    return None


def _init_arguments(cls):
    """The keyword arguments ``cls(...)`` accepts, following ``**kwargs``
    up the class hierarchy (subclasses often pass them on)."""
    names = []
    for klass in cls.__mro__:
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            break
        forwards = False
        for param in params:
            if param.kind is param.VAR_KEYWORD:
                forwards = True
            elif param.name != 'self' and param.kind in (
                    param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY) \
                    and param.name not in names:
                names.append(param.name)
        if not forwards:
            break
    return names


def _fail(command, message):
    # an error raised in a DataLoader worker is rebuilt by torch from the
    # text 'Caught X in DataLoader worker process N.\nOriginal Traceback
    # ...\nbidl_train.errors.X: <message>': keep only <message>
    if '\nOriginal Traceback' in message:
        last = message.rstrip().splitlines()[-1]
        message = last.split(': ', 1)[-1]
    sys.stderr.write(f'{command}: error: {message}\n')
    raise SystemExit(2)
