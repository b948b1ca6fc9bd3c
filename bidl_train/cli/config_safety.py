"""YAML (and JSON) configs are data: they may not import or run code.

A Python config is code and runs as such. A YAML config is often passed
around like a data file, so reading and running it must never execute code
its author chose. The YAML parser itself is safe (PyYAML's safe loader, see
``common._SafeYamlHandler``), but mmengine turns plain strings into code in
three more places, each closed here:

1. ``_base_`` inheritance: a YAML config whose ``_base_`` names a ``.py``
   file makes mmengine execute that file (and ``pkg::path`` loads a config of
   another installed package). :func:`data_bases_only` refuses both while the
   file is read, before the base is opened.
2. Building objects: ``Registry.get`` falls back to importing any dotted
   path (``type: os.system`` builds ``os.system(...)``), and a scoped name
   (``type: somepkg.X``, ``_scope_``, ``default_scope``) imports
   ``somepkg.registry``. ``custom_imports`` imports modules while loading.
   :func:`check_data_config` refuses all of these in the merged config before
   anything is built, naming the key.
3. Strings that reach a registry outside a ``type`` key (``neuron: LIF``,
   ``optim_wrapper.constructor``, a registered name in the wrong section):
   :func:`restrict_registry_imports` switches off the dotted-path fallback
   and foreign-scope imports of mmengine's registries for the run.
"""
import difflib
import os.path as osp
from contextlib import contextmanager

import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import Registry
from mmengine.registry import registry as mm_registry

import bidl_train
from bidl_train import registry as ours
from bidl_train.errors import ConfigError

__all__ = [
    'is_data_config', 'data_bases_only', 'check_data_config',
    'restrict_registry_imports', 'SHIPPED_CONFIGS'
]

#: Registry scopes a data config may name (``scope.Name``, ``_scope_``,
#: ``default_scope``): ours and mmengine's. Any other scope makes mmengine
#: import ``<scope>.registry``.
ALLOWED_SCOPES = ('bidl_train', 'mmengine')

DATA_SUFFIXES = ('.yaml', '.yml', '.json')

#: bidl-train's own configs: Python files here are our code, as trusted as
#: the package itself, so a YAML config may inherit them
#: (``_base_: [configs/dvs_gesture.py]``).
SHIPPED_CONFIGS = osp.join(
    osp.dirname(osp.dirname(osp.abspath(bidl_train.__file__))), 'configs')

#: Keys besides ``type`` whose string value mmengine looks up in a registry
#: (``OptimWrapper`` constructors, ``EMAHook``'s model type, runner type).
NAME_KEYS = ('constructor', 'ema_type', 'runner_type')

#: ``type`` words that select a branch inside a builder rather than a
#: registry entry: mmengine's gradient clipping and profiler trace handlers.
BUILDER_WORDS = ('norm', 'value', 'log_trace', 'tb_trace')

HOW_TO_FIX = ('YAML configs may only name registered types (Python '
              'configs are code: write one to use other callables)')


def is_data_config(path):
    """YAML and JSON configs are data; ``.py`` configs are code."""
    return osp.splitext(path)[1].lower() in DATA_SUFFIXES


# ---------------------------------------------------------------------------
# 1. _base_ inheritance
# ---------------------------------------------------------------------------
@contextmanager
def data_bases_only(top):
    """While reading data config ``top``: refuse bases that are code.

    Hooks mmengine's ``Config._get_cfg_path``, which resolves every
    ``_base_`` entry (after ``{{ }}`` substitution, at any depth) just before
    that base is read, so a refused base is never opened.
    """
    original = Config.__dict__['_get_cfg_path']

    def checked(cfg_path, filename):
        _check_base(top, cfg_path, filename)
        return original.__func__(cfg_path, filename)

    Config._get_cfg_path = staticmethod(checked)
    try:
        yield
    finally:
        Config._get_cfg_path = original


def _check_base(top, cfg_path, filename):
    where = f'config {top}: _base_ {cfg_path!r} of {filename}'
    if not isinstance(cfg_path, str):
        raise ConfigError(f'{where} must be a file path string')
    if '::' in cfg_path:
        raise ConfigError(
            f'{where} names another package\'s config; a YAML config may '
            'inherit only YAML/JSON files and bidl-train\'s configs/')
    path = osp.join(osp.dirname(filename), cfg_path)
    suffix = osp.splitext(path)[1].lower()
    if suffix in DATA_SUFFIXES or (suffix == '.py' and _is_shipped(path)):
        return
    raise ConfigError(
        f'{where} is not a YAML/JSON file; a YAML config may inherit only '
        f'YAML/JSON files and the Python configs under {SHIPPED_CONFIGS} '
        '(Python configs are code: make the top config a .py file to '
        'inherit other Python files)')


def _is_shipped(path):
    shipped = osp.realpath(SHIPPED_CONFIGS)
    if not osp.isdir(shipped):
        return False
    real = osp.realpath(path)
    return osp.commonpath([real, shipped]) == shipped


# ---------------------------------------------------------------------------
# 2. The merged config
# ---------------------------------------------------------------------------
def check_data_config(cfg, source):
    """Refuse anything in ``cfg`` that would import or call chosen code.

    ``source`` names where the config came from in messages (the file, or
    the file plus ``--cfg-options``). Checked: every ``type`` (and
    :data:`NAME_KEYS`) value at any depth is a registered name,
    ``_scope_``/``default_scope`` are ours or mmengine's, and there is no
    ``custom_imports``.
    """
    data = cfg.to_dict() if isinstance(cfg, Config) else dict(cfg)
    if 'custom_imports' in data:
        raise ConfigError(
            f'config {source}: custom_imports imports Python modules; '
            f'{HOW_TO_FIX}')
    _check_scope(data.get('default_scope'), 'default_scope', source)
    known = _known_names()
    for path, key, value in _walk(data):
        if key == '_scope_':
            _check_scope(value, path, source)
        elif key == 'type' or (key in NAME_KEYS and value is not None):
            _check_name(value, path, source, known)


def _walk(node, path=''):
    """Yield ``(path, key, value)`` for every dict item at any depth."""
    if isinstance(node, dict):
        for key, value in node.items():
            sub = f'{path}.{key}' if path else str(key)
            yield sub, key, value
            yield from _walk(value, sub)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _walk(value, f'{path}[{i}]')


def _check_scope(value, path, source):
    if value is None or value in ALLOWED_SCOPES:
        return
    raise ConfigError(
        f'config {source}: {path}={value!r} is not a registry scope of '
        f'bidl-train ({", ".join(ALLOWED_SCOPES)}); other scopes import '
        f'their packages. {HOW_TO_FIX}')


def _check_name(value, path, source, known):
    if not isinstance(value, str):
        raise ConfigError(
            f'config {source}: {path}={value!r} must be a registered type '
            f'name (a string); {HOW_TO_FIX}')
    if _is_known(value, known):
        return
    last = value.rpartition('.')[2]
    close = difflib.get_close_matches(last, sorted(known[None]), n=3,
                                      cutoff=0.6)
    hint = f' Did you mean {", ".join(close)}?' if close else ''
    raise ConfigError(
        f'config {source}: {path}={value!r} is not a registered '
        f'bidl-train/mmengine type; {HOW_TO_FIX}.{hint}')


def _is_known(name, known):
    # split as mmengine does: 'bidl_train.seed_worker' is scope + name
    scope, key = Registry.split_scope_key(name)
    if scope is None:
        return key in known[None]
    return scope in ALLOWED_SCOPES and key in known[scope]


def _known_names():
    """``{None: every plain name, scope: names registered in that scope}``.

    Plain names: everything registered in bidl-train's registries and
    their mmengine parents (imported from their locations first), torch.nn
    layer classes (bidl-train's layer builder accepts ``type: ReLU``),
    surrogate shortcuts and :data:`BUILDER_WORDS`. None of these contains a
    dot, so none can name a module to import.
    """
    from bidl_train.neurons.surrogate import SURROGATE_SHORTCUTS
    known = {scope: set() for scope in ALLOWED_SCOPES}
    for registry in _registries():
        registry.import_from_location()
        known[registry.scope].update(registry.module_dict)
    plain = set().union(*known.values())
    plain.update(name for name, obj in vars(nn).items()
                 if isinstance(obj, type) and issubclass(obj, nn.Module))
    plain.update(SURROGATE_SHORTCUTS, BUILDER_WORDS)
    known[None] = plain
    return known


def _registries():
    """bidl-train's registries and the mmengine registries they extend."""
    found = [ours.MODELS, ours.DATASETS, ours.TRANSFORMS, ours.METRICS,
             ours.HOOKS, ours.LOOPS, ours.LEARNING_RULES,
             ours.DEPLOY_TARGETS]
    found += ours.PASS_THROUGH_REGISTRIES.values()
    parents = [r.parent for r in found if r.parent is not None]
    return [r for r in found + parents if r.scope in ALLOWED_SCOPES]


# ---------------------------------------------------------------------------
# 3. Run time: no dotted-path imports from mmengine's registries
# ---------------------------------------------------------------------------
_state = {'strict': False, 'originals': None}


def restrict_registry_imports(strict):
    """Switch mmengine's registry lookups to registered names only.

    With ``strict`` on, ``Registry.get`` no longer imports a dotted path it
    does not find registered (it returns None, so the build fails with
    mmengine's 'not in the registry' error), and imports ``<scope>.registry``
    only for bidl_train and mmengine. A process runs one config, so
    :func:`load_config` sets this once per command: on for YAML/JSON, off for
    Python configs (which may name any importable callable).
    """
    if _state['originals'] is None:
        _state['originals'] = (mm_registry.get_object_from_string,
                               mm_registry.import_module)
        mm_registry.get_object_from_string = _get_object_from_string
        mm_registry.import_module = _import_module
    _state['strict'] = bool(strict)


def _get_object_from_string(name):
    if _state['strict']:
        return None  # registered names only: never import a dotted path
    return _state['originals'][0](name)


def _import_module(name, package=None):
    if _state['strict'] and name.partition('.')[0] not in ALLOWED_SCOPES:
        raise ImportError(f'{name} not imported: a YAML config may only use '
                          f'the {" and ".join(ALLOWED_SCOPES)} registries')
    return _state['originals'][1](name, package)

