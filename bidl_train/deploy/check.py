"""``bidl-deploy CONFIG --check --target T``: can this config deploy?

Builds the config's model (random weights unless the caller loaded a
checkpoint), finds every blocker of the target at once
(:func:`~.api.find_blockers`) and, for each, the config change that
removes it.

A fix is never guessed from the message alone: candidate changes come
from what the refusal names (``norm_state``, ``soft reset``, an ``ALIF
neuron``, a ``use stem='cifar'`` hint) applied to each dict of
``cfg.model`` that has (or, failing that, accepts) the key; a candidate
is reported only when the model rebuilt with it no longer has that
blocker at that layer and the same feature blocks fewer layers. A blocker
with no such change says so. The config with every fix is then checked
again (exported too), since a layer refused for one feature was not
checked for the next: what that finds is reported as well.
"""
import copy
import re
from dataclasses import dataclass, field

from bidl_train.registry import MODELS
from .api import find_blockers
from .samples import random_batch

__all__ = ['check_config', 'CheckResult', 'ConfigBlocker', 'Change',
           'format_check']

#: what in a refusal's text points at which config key and value
_CANDIDATES = [
    ('norm_state', [('norm_state', False)]),
    ('analog (LIAF) output', [('mode', 'spike')]),
    ('soft reset', [('reset', 'hard')]),
    ('beta != 0', [('beta', 0.0)]),
    ('v0 != 0', [('v0', 0.0)]),
    ('per-channel/per-neuron', [('param_shape', 'layer')]),
    # (ConvLifNet's max pooling has no NIR-friendly alternative that keeps
    # the model's size: dropping it multiplies the first FC layer)
    ('MaxPool', [('stem', 'cifar')]),
    ('ReLU', [('fc_type', 'lif'), ('lite', False)]),
    ('lite=True', [('lite', False)]),
    ('grouped', [('groups', 1)]),
    ('ceil_mode', [('ceil_mode', False)]),
    ('BatchNorm without running statistics',
     [('track_running_stats', True)]),
]
#: neuron kinds NIR (and every target) can express: the replacement for a
#: refused kind
_PLAIN_NEURON = 'LIF'
_HINT_ASSIGNMENT = re.compile(r"\b(\w+)=('[^']*'|\"[^\"]*\"|[\w.+-]+)")


@dataclass
class Change:
    """Set ``key`` of the config dict at ``path`` (inside ``cfg.model``)
    to ``value``; ``replace``: replace that whole dict by ``value``."""
    path: tuple
    key: str
    value: object
    replace: bool = False

    def apply(self, model_cfg):
        """A copy of ``model_cfg`` with this change (and nothing else)."""
        model_cfg = copy.deepcopy(model_cfg)
        node, path = model_cfg, list(self.path)
        if self.replace:
            path, last = path[:-1], path[-1]
        for part in path:
            node = node[part]
        if self.replace:
            node[last] = self.value
        else:
            node[self.key] = self.value
        return model_cfg

    def __str__(self):
        dotted = '.'.join(['model'] + [str(p) for p in self.path])
        if self.replace:  # --cfg-options cannot replace a dict
            args = ', '.join(f'{k}={v!r}' for k, v in self.value.items())
            return f'set {dotted} = dict({args}) in the config'
        return f'--cfg-options {dotted}.{self.key}={_shown(self.value)}'


@dataclass
class ConfigBlocker:
    """A blocker plus the config change that removes it (None: none
    found)."""
    layer: str
    feature: str
    message: str
    fix: Change = None

    @property
    def hint(self):
        """What the refusal itself advises, after its feature."""
        _, _, rest = self.message.partition(self.feature)
        return rest.lstrip('; ').strip()

    def as_dict(self):
        return dict(layer=self.layer, feature=self.feature,
                    message=self.message,
                    fix=None if self.fix is None else str(self.fix))


@dataclass
class CheckResult:
    """What ``--check`` found.

    ``blockers``: those of the config as given, each with its fix.
    ``later``: blockers that show only once those fixes are made (a layer
    refused for one feature is not checked for the next), with theirs.
    ``fixes``: every change, in order. ``fixed_deploys``: whether the
    config with all of them deploys (None: not known, some blocker has no
    fix).
    """
    blockers: list
    later: list = field(default_factory=list)
    fixes: list = field(default_factory=list)
    fixed_deploys: bool = None

    @property
    def deployable(self):
        return not self.blockers


def _shown(value):
    """A value as ``--cfg-options`` reads it (mmengine's DictAction)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return '[' + ','.join(_shown(v) for v in value) + ']'
    return repr(value)


def _literal(text):
    """A hint's value as Python (``'cifar'`` -> 'cifar', ``False``)."""
    if text[:1] in '\'"':
        return text[1:-1]
    lookup = {'True': True, 'False': False, 'None': None}
    if text in lookup:
        return lookup[text]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _candidates(blocker):
    """``[(key, value, only_type)]`` that may remove
    ``blocker``; ``only_type``: a neuron kind, whose dicts change type."""
    found = []
    text = f'{blocker.feature} {blocker.message}'
    kind = (re.match(r'(\w+) neuron\b', blocker.feature) or
            re.match(r'neuron kind (\w+) ', blocker.feature))
    if kind and kind.group(1) != _PLAIN_NEURON:
        found.append(('type', _PLAIN_NEURON, kind.group(1)))
    for needle, changes in _CANDIDATES:
        if needle in text:
            found.extend((key, value, None) for key, value in changes)
    for key, value in _HINT_ASSIGNMENT.findall(text):
        found.append((key, _literal(value), None))
    unique = []
    for item in found:
        if item not in unique:
            unique.append(item)
    return unique


def _dicts(node, path=()):
    """``(path, dict)`` of every config dict under ``node`` (model first)."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _dicts(value, path + (key, ))
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _dicts(value, path + (i, ))


def _changes(model_cfg, key, value, only_type):
    """The concrete :class:`Change` s to try, best first: the dicts that set
    ``key``, then those with a ``type`` that do not (the class may take it
    with a default the refusal is about). A neuron kind: its dicts with the
    type changed, then replaced by a plain one."""
    having, lacking = [], []
    for path, node in _dicts(model_cfg):
        if only_type is not None:
            if node.get('type') == only_type:
                having.append(Change(path, key, value))
                lacking.append(Change(path, key, {'type': value}, True))
            continue
        if key in node:
            if node[key] != value:
                having.append(Change(path, key, value))
        elif 'type' in node:
            lacking.append(Change(path, key, value))
    return having + lacking


#: a changed model this many times the original's size is no fix
_MAX_GROWTH = 2

def _size(model):
    return sum(t.numel() for t in model.state_dict().values())


class _Checker:
    """Blockers of changed configs, each built and checked once.

    A changed config that does not build, or whose model is more than
    :data:`_MAX_GROWTH` times the size of the original, is no fix: a fix
    removes a blocker, it does not make another model.
    """

    def __init__(self, target, precision, x_seq, size):
        self.target, self.precision, self.x_seq = target, precision, x_seq
        self.max_size = _MAX_GROWTH * size
        self._seen = {}

    def blockers(self, model_cfg, try_export=False):
        """The blockers of ``model_cfg`` (None: no fix, see above)."""
        key = (repr(model_cfg), try_export)
        if key not in self._seen:
            self._seen[key] = self._check(model_cfg, try_export)
        return self._seen[key]

    def _check(self, model_cfg, try_export):
        try:
            model = MODELS.build(copy.deepcopy(model_cfg))
        except Exception:  # noqa: BLE001 (a change the model refuses)
            return None
        if _size(model) > self.max_size:
            return None
        return find_blockers(model, self.target, self.x_seq, self.precision,
                             try_export=try_export)


def _removes(blocker, base, after):
    """Whether ``after`` (the blockers of a changed config) lacks
    ``blocker`` of ``base``: not at that layer any more, and fewer layers
    with that feature (layer paths shift when a change removes layers)."""
    if after is None:
        return False
    pairs = {(b.layer, b.feature) for b in after}
    before = sum(b.feature == blocker.feature for b in base)
    now = sum(b.feature == blocker.feature for b in after)
    return (blocker.layer, blocker.feature) not in pairs and now < before


def _fix(blocker, base, model_cfg, checker):
    """The first candidate change that removes ``blocker``, preferring one
    that brings no new kind of blocker with it."""
    known = {b.feature for b in base}
    fallback = None
    for key, value, only_type in _candidates(blocker):
        for change in _changes(model_cfg, key, value, only_type):
            after = checker.blockers(change.apply(model_cfg))
            if _removes(blocker, base, after):
                if all(b.feature in known for b in after):
                    return change
                fallback = fallback or change
    return fallback


def _with_fixes(blockers, model_cfg, checker):
    return [ConfigBlocker(b.layer, b.feature, b.message,
                          _fix(b, blockers, model_cfg, checker))
            for b in blockers]


#: how many times the fixed config is checked again for blockers its
#: fixes uncover
_ROUNDS = 3


def check_config(cfg, target, precision='fp32', model=None):
    """Every blocker of ``cfg``'s model for ``target``, each with its fix.

    Args:
        cfg (Config): the config (default scope initialised).
        target (str): a registered deploy target.
        precision (str): the precision to check for.
        model: the model to check (a checkpoint's weights loaded); default
            a model built from ``cfg.model`` with random weights. Fixes are
            tried on freshly built models (random weights).

    Returns:
        CheckResult: no ``blockers`` when the model lowers, passes the
        target's check and exports.
    """
    if model is None:
        model = MODELS.build(cfg.model)
    x_seq = random_batch(cfg, model, 1)
    checker = _Checker(target, precision, x_seq, _size(model))
    model_cfg = cfg.model
    current = _with_fixes(find_blockers(model, target, x_seq, precision),
                          model_cfg, checker)
    result = CheckResult(current)
    for _ in range(_ROUNDS):
        if not current:
            result.fixed_deploys = bool(result.fixes)
            return result
        if any(b.fix is None for b in current):
            return result
        for b in current:  # shared fixes (one neuron dict) once
            if str(b.fix) not in map(str, result.fixes):
                result.fixes.append(b.fix)
                model_cfg = b.fix.apply(model_cfg)
        after = checker.blockers(model_cfg, try_export=True)
        if after is None:
            return result
        current = _with_fixes(after, model_cfg, checker)
        result.later += current
    if not current:
        result.fixed_deploys = True
    return result


def _fix_line(blocker):
    if blocker.fix is not None:
        return f'    fix: {blocker.fix}'
    return ('    fix: no config key found that removes it'
            + (f'; {blocker.hint}' if blocker.hint else ''))


def format_check(result, config, target, weights):
    """The console report of :func:`check_config` (``weights``: which
    weights were checked, e.g. ``'random weights'``)."""
    if result.deployable:
        return (f'bidl-deploy --check: {config} deploys to {target} '
                f'({weights}): no blockers')
    count = len(result.blockers)
    lines = [f'bidl-deploy --check: {config} cannot be deployed to {target}'
             f' ({weights}): {count} blocker' + ('s' if count > 1 else '')]
    for b in result.blockers:
        lines += [f'  {b.layer}: {b.feature}', _fix_line(b)]
    if result.later:
        lines.append('  once those are fixed, the check finds:')
        for b in result.later:
            lines += [f'  {b.layer}: {b.feature}', _fix_line(b)]
    if result.fixed_deploys:
        lines.append(f'  with all {len(result.fixes)} change'
                     + ('s' if len(result.fixes) > 1 else '')
                     + f' it deploys to {target}')
    return '\n'.join(lines)
