"""Global-local schedules: which kind of learning runs when, on which layers.

A schedule is a list of phases run one after the other, given to the
co-learning training loop::

    train_cfg = dict(
        type='GlobalLocalLoop',
        max_epochs=8,
        phases=[
            dict(mode='global', epochs=6),                 # BPTT only
            dict(mode='local', epochs=2,                   # on-chip learning
                 layers=['backbone.layers.5'],
                 data=dict(...)),                          # optional loader
            dict(mode='hybrid'),                           # to the end
        ])

Modes:

* ``'global'``: BPTT trains the parameters of the named ``layers`` (all
  parameters when ``layers`` is omitted; the others are frozen); no local
  learning in persistent plastic layers.
* ``'local'``: no gradients, no optimizer step: forward passes only, the
  model in eval mode (BatchNorm statistics and dropout frozen, as on a
  chip); the persistent plastic layers among ``layers`` (all plastic layers
  when omitted) learn with their local rules. No global parameter changes.
* ``'hybrid'``: both in every iteration: BPTT on ``layers`` and local
  learning in the plastic layers among them.

Fast (per-sample) plastic layers run their plasticity in every phase: it is
part of their forward computation; the schedule decides whether BPTT trains
their global weights and coefficients. A rule that needs a teaching signal
(reward-modulated STDP) gets the labels of every training batch, which the
batch carries in ``data_samples``; validation and test batches teach nothing.

Lengths are given in ``epochs`` or in ``iters`` (the same unit for every
phase); the last phase may omit its length and then runs to the end of
training. ``layers`` lists module names of the model (as in
``model.named_modules()``, e.g. ``'backbone.layers.5'``); a name covers the
module and everything inside it. ``data`` replaces the training data loader
while the phase runs (a dataloader config, as ``train_dataloader``); phases
without it use the run's ``train_dataloader``.

The :class:`~bidl_train.engine.loops.GlobalLocalLoop` runs a schedule. The
older top-level key ``colearning=dict(type='GlobalLocalSchedule',
phases=[...])`` means the same loop (see :func:`build_schedule`).
"""
import copy

from bidl_train.errors import ConfigError
from bidl_train.registry import LEARNING_RULES

__all__ = ['Phase', 'GlobalLocalSchedule', 'build_schedule']

MODES = ('global', 'local', 'hybrid')
_PHASE_KEYS = {'mode', 'epochs', 'iters', 'layers', 'data'}


class Phase:
    """One phase of a schedule (see the module docstring)."""

    def __init__(self, index, mode, epochs=None, iters=None, layers=None,
                 data=None, key='train_cfg.phases'):
        where = f'{key}[{index}]'
        if mode not in MODES:
            raise ConfigError(f'{where}.mode must be one of {MODES}, got '
                              f'{mode!r}')
        if epochs is not None and iters is not None:
            raise ConfigError(f'{where}: give epochs or iters, not both')
        length = epochs if epochs is not None else iters
        if length is not None and (isinstance(length, bool)
                                   or not isinstance(length, int)
                                   or length < 1):
            key = 'epochs' if epochs is not None else 'iters'
            raise ConfigError(f'{where}.{key} must be a positive int, got '
                              f'{length!r}')
        if layers is not None:
            if isinstance(layers, str):
                layers = [layers]
            if not isinstance(layers, (list, tuple)) or not layers or \
                    not all(isinstance(n, str) and n for n in layers):
                raise ConfigError(f'{where}.layers must be a non-empty list '
                                  f'of module names, got {layers!r}')
            layers = tuple(layers)
        if data is not None and not isinstance(data, dict):
            raise ConfigError(f'{where}.data must be a dataloader config '
                              f'dict, got {type(data).__name__}')
        self.index = index
        self.mode = mode
        self.unit = 'epoch' if epochs is not None else (
            'iter' if iters is not None else None)
        self.length = length
        self.layers = layers
        self.data = copy.deepcopy(dict(data)) if data is not None else None

    @property
    def trains_global(self):
        return self.mode in ('global', 'hybrid')

    @property
    def learns_locally(self):
        return self.mode in ('local', 'hybrid')

    def touches(self, name):
        """Whether the module or parameter ``name`` is inside ``layers``."""
        if self.layers is None:
            return True
        return any(name == layer or name.startswith(layer + '.')
                   for layer in self.layers)

    def describe(self):
        length = (f'{self.length} {self.unit}s' if self.length is not None
                  else 'until the end')
        layers = 'all layers' if self.layers is None else ', '.join(
            self.layers)
        return (f'phase {self.index} ({self.mode}, {length}, {layers}' +
                (', own data' if self.data is not None else '') + ')')

    def __repr__(self):
        return f'Phase<{self.describe()}>'


@LEARNING_RULES.register_module()
class GlobalLocalSchedule:
    """A sequence of :class:`Phase` (see the module docstring).

    Args:
        phases (list[dict]): phase configs with keys ``mode``, ``epochs`` or
            ``iters``, optional ``layers`` and ``data``.
        key (str): where the phases stand in the config (error messages).
    """

    def __init__(self, phases, key='train_cfg.phases'):
        if not isinstance(phases, (list, tuple)) or not phases:
            raise ConfigError(f'{key} must be a non-empty list of dicts such '
                              "as dict(mode='global', epochs=5)")
        built = []
        for i, spec in enumerate(phases):
            if not isinstance(spec, dict):
                raise ConfigError(f'{key}[{i}] must be a dict, got '
                                  f'{type(spec).__name__}')
            unknown = set(spec) - _PHASE_KEYS
            if unknown:
                raise ConfigError(
                    f'{key}[{i}]: unknown key(s) '
                    f'{sorted(unknown)}; known: {sorted(_PHASE_KEYS)}')
            if 'mode' not in spec:
                raise ConfigError(f'{key}[{i}] needs a mode, one of {MODES}')
            built.append(Phase(i, key=key, **spec))
        for phase in built[:-1]:
            if phase.length is None:
                raise ConfigError(
                    f'{key}[{phase.index}] needs epochs or iters'
                    ' (only the last phase may run to the end)')
        units = {p.unit for p in built if p.unit is not None}
        if len(units) > 1:
            raise ConfigError(f'{key} mix epochs and iters; give every phase '
                              'length in the same unit')
        self.key = key
        self.phases = built
        self.unit = units.pop() if units else 'epoch'
        starts, position = [], 0
        for phase in built:
            starts.append(position)
            position += phase.length or 0
        self.starts = starts

    def index_at(self, position):
        """Index of the phase running at ``position`` (0-based epoch or
        iteration, in :attr:`unit`). After the last phase's length the last
        phase goes on."""
        index = 0
        for i, start in enumerate(self.starts):
            if position >= start:
                index = i
        return index

    def phase_at(self, position):
        return self.phases[self.index_at(position)]

    def total_length(self):
        """Summed phase lengths (the last phase counts when it has one)."""
        return sum(p.length or 0 for p in self.phases)

    def check_layers(self, module_names, plastic_names):
        """Refuse layer names the model does not have, and local phases that
        name no plastic layer."""
        module_names = set(module_names)
        for phase in self.phases:
            for layer in phase.layers or ():
                if layer not in module_names:
                    raise ConfigError(
                        f'{self.key}[{phase.index}].layers names '
                        f'{layer!r}, which is not a module of the model')
            if phase.mode == 'local' and not any(
                    phase.touches(n) for n in plastic_names):
                raise ConfigError(
                    f'{self.key}[{phase.index}] is a local phase but '
                    'touches no plastic layer (PlasticFcLif, '
                    'PlasticConv2dLif); plastic layers of the model: '
                    f'{sorted(plastic_names) or "none"}')

    def __repr__(self):
        return ('GlobalLocalSchedule(' +
                '; '.join(p.describe() for p in self.phases) + ')')


def build_schedule(spec):
    """A :class:`GlobalLocalSchedule` from the older top-level
    ``colearning=dict(type='GlobalLocalSchedule', phases=[...])`` config
    (error messages name that key)."""
    if isinstance(spec, GlobalLocalSchedule):
        return spec
    if not isinstance(spec, dict):
        raise ConfigError('colearning must be a dict such as dict(type='
                          "'GlobalLocalSchedule', phases=[...]), got "
                          f'{type(spec).__name__}')
    cfg = dict(spec)
    kind = cfg.pop('type', 'GlobalLocalSchedule')
    cls = LEARNING_RULES.get(kind) if isinstance(kind, str) else kind
    if not (isinstance(cls, type) and issubclass(cls, GlobalLocalSchedule)):
        raise ConfigError(f'colearning.type {kind!r} is not a registered '
                          'schedule (use GlobalLocalSchedule)')
    unknown = set(cfg) - {'phases'}
    if unknown:
        raise ConfigError(f'colearning: unknown key(s) {sorted(unknown)}; '
                          'a schedule takes phases=[...]')
    return cls(key='colearning.phases', **cfg)
