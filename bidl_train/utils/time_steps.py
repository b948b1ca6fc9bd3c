"""Time steps (T): one name, one default, one way to read it from a config.

Every sample this package trains on is a sequence of ``num_steps`` steps:
event frames, video frames, volume slices used as time, text tokens, or a
static image repeated or encoded over T steps. The component that makes the
steps states ``num_steps=``: an event representation (``EventFrames``,
``VoxelGrid``, ...), a dataset whose own argument sets the length (text,
volumes, video clips) or a spike encoder (``RateEncoder``, ...). Datasets
report it as ``metainfo['num_steps']`` (None when a sample has no time axis
yet, e.g. static images encoded later by the model's data preprocessor).

A config states it once, at its top level (``num_steps = 10``), and its
components refer to that variable. Tools that need T without loading data
(random inputs, the deploy matrix) read it with :func:`config_num_steps`:
from that key, from the dataset config (each dataset class says, in its
``stated_num_steps``, which of its arguments make the steps), from the
built dataset's metainfo and from the model's encoder, refusing any
disagreement between them. Nothing is guessed from key names.

Earlier names are still accepted as aliases of ``num_steps``: ``T`` (event
representations, spike encoders, video datasets, synthetic motion),
``max_len`` (text datasets: one token per step) and ``num_slices`` (volume
datasets: one slice per step). Giving an alias and ``num_steps`` with
different values is refused in one line (:func:`resolve_num_steps`).

It lives in ``utils`` (below both ``datasets`` and ``models`` in the import
order), so data code and model code share it; dataset classes are reached
through the ``DATASETS`` registry by name, never imported.
"""
from bidl_train.errors import ConfigError
from bidl_train.registry import DATASETS

__all__ = ['DEFAULT_NUM_STEPS', 'UNSET', 'resolve_num_steps',
           'config_num_steps', 'dataset_config_num_steps']

#: T of the event representations and video datasets when a config gives
#: none (BIDL's usual 16 frames)
DEFAULT_NUM_STEPS = 16


class _Unset:
    """Default of ``num_steps`` and its aliases: "not given", distinct from
    None, which some owners accept as a value (``EventFrames(num_steps=None,
    duration=...)``: as many frames as needed; volumes: every slice)."""

    def __repr__(self):
        return 'UNSET'


UNSET = _Unset()


def resolve_num_steps(owner, num_steps=UNSET, default=None, **aliases):
    """The one ``num_steps`` of ``owner`` from its argument and the old
    names it used to be given under.

    ``aliases`` maps each old keyword (``T``, ``max_len``, ``num_slices``)
    to the value passed for it (:data:`UNSET`: not given). An alias equal
    to ``num_steps`` is accepted; a different one is a :class:`ConfigError`
    that names both keys. Returns ``default`` when nothing was given.
    """
    given = {key: value for key, value in aliases.items()
             if value is not UNSET}
    if num_steps is not UNSET:
        given = dict(num_steps=num_steps, **given)
    values = list(dict.fromkeys(given.values()))
    if len(values) > 1:
        said = ' and '.join(f'{key}={value!r}' for key, value in given.items())
        old = '/'.join(key for key in given if key != 'num_steps')
        raise ConfigError(f'{owner}: {said} disagree; {old} is the old name '
                          'of num_steps, give only num_steps')
    return values[0] if values else default


#: the splits whose dataset config states T, in the order verification
#: and analysis read them (the validation split first)
SPLITS = ('val', 'test', 'train')


def dataset_config_num_steps(dataset_cfg):
    """T that a dataset config states, without reading data: asked of the
    dataset class (its ``stated_num_steps`` classmethod); None when the
    class cannot tell before reading its files or has no time axis."""
    cls = DATASETS.get(dataset_cfg.get('type'))
    ask = getattr(cls, 'stated_num_steps', None)
    return None if ask is None else ask(dataset_cfg)


def _split_dataset_cfg(cfg):
    for split in SPLITS:
        loader = cfg.get(f'{split}_dataloader') or {}
        if isinstance(loader.get('dataset'), dict):
            return split, loader['dataset']
    return None, None


def _sources(cfg, dataset, model):
    """``[(where, T), ...]`` of every place that states T for ``cfg``."""
    found = []
    if cfg.get('num_steps') is not None:
        found.append(('the config\'s num_steps', cfg['num_steps']))
    hint = cfg.get('_input_shape')
    if hint:
        found.append(('_input_shape[0]', hint[0]))
    if dataset is not None:
        steps = (getattr(dataset, 'metainfo', None) or {}).get('num_steps')
        found.append(('the dataset\'s metainfo["num_steps"]', steps))
    else:
        split, dataset_cfg = _split_dataset_cfg(cfg)
        if dataset_cfg is not None:
            found.append((f'{split}_dataloader.dataset',
                          dataset_config_num_steps(dataset_cfg)))
    preprocessor = getattr(model, 'data_preprocessor', None)
    encoder = getattr(preprocessor, 'encoder', None)
    if encoder is not None:
        found.append((f'the data preprocessor\'s {type(encoder).__name__}',
                      getattr(encoder, 'num_steps', None)))
    return [(where, int(value)) for where, value in found
            if value is not None]


def config_num_steps(cfg, dataset=None, model=None):
    """T of one sample of ``cfg`` (int).

    Read from what states it, never guessed from other keys: the config's
    top-level ``num_steps``, its ``_input_shape`` hint ``(T, C, H, W)``,
    the dataset (``dataset.metainfo['num_steps']`` when given, else what
    the first of the val/test/train dataset configs states) and the spike
    encoder of ``model.data_preprocessor`` (when given). They must agree;
    a config stating none of them is refused, naming the key to add.
    """
    found = _sources(cfg, dataset, model)
    if not found:
        raise ConfigError(
            'the config does not state its number of time steps; add '
            'num_steps = T at its top level (and use it in the '
            'representation, dataset or encoder that makes the steps)')
    if len({value for _, value in found}) > 1:
        said = ', '.join(f'{where} = {value}' for where, value in found)
        raise ConfigError(f'the config\'s time steps disagree: {said}; make '
                          'them one value (set num_steps once at the top '
                          'level and refer to it)')
    return found[0][1]
