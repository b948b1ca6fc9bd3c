"""Tonic interoperability: Tonic's transforms in our pipelines, our event
datasets in Tonic code.

Tonic (``tonic.transforms``) works on one structured array of events and
takes the sensor size as ``(W, H, P)``; our pipelines pass a results dict
with ``events`` (:data:`~bidl_train.datasets.io.EVENT_DTYPE`) and
``sensor_size = (H, W)``. Handing the dict to a Tonic transform fails with
``'dict' object has no attribute 'dtype'``. :class:`TonicTransform`
converts between the two; :class:`TonicView` (``dataset.as_tonic()``) gives
an event dataset Tonic's ``(events, target)`` interface.

Tonic is optional and only imported when a :class:`TonicTransform` is
built (``pip install --no-deps tonic``, plus its import-time dependencies
``scipy``, ``h5py``, ``tqdm``, ``requests`` and ``importRosbag``);
:class:`TonicView` needs only numpy.
"""
import difflib
import inspect

import numpy as np

from bidl_train.errors import ConfigError, DataError
from bidl_train.registry import TRANSFORMS

from ..io import EVENT_DTYPE

#: Tonic's event dtype (``tonic.io.events_struct``): x, y int16, t int64
#: (microseconds, as ours), p bool (True = ON).
TONIC_DTYPE = np.dtype([('x', np.int16), ('y', np.int16), ('t', np.int64),
                        ('p', bool)])

INSTALL_HINT = ('pip install --no-deps tonic && pip install scipy h5py tqdm '
                'requests importRosbag')


def tonic_sensor_size(sensor_size):
    """Our ``(H, W)`` as Tonic's ``(W, H, 2)``."""
    h, w = (int(v) for v in sensor_size)
    return (w, h, 2)


def to_tonic_events(events):
    """Our event array as a :data:`TONIC_DTYPE` array (a copy)."""
    out = np.empty(len(events), dtype=TONIC_DTYPE)
    if len(events) and max(int(events['x'].max()),
                           int(events['y'].max())) > np.iinfo(np.int16).max:
        raise DataError('an event coordinate exceeds 32767, the largest '
                        "Tonic's int16 x/y can hold")
    out['x'], out['y'], out['t'] = events['x'], events['y'], events['t']
    out['p'] = events['p'] > 0
    return out


def from_tonic_events(events, sensor_size=None):
    """A Tonic structured array (any integer/float/bool fields ``x, y, t,
    p``) as our :data:`EVENT_DTYPE` array.

    Polarity ``p > 0`` is ON (Tonic datasets use 0/1, -1/1 or bool); times
    are rounded to whole microseconds. With ``sensor_size = (H, W)`` events
    outside it are removed, as our own event transforms do.
    """
    missing = [f for f in 'xytp' if f not in (events.dtype.names or ())]
    if missing:
        raise DataError(f'Tonic events lack the field(s) {missing}; got '
                        f'{events.dtype.names}')
    x = np.asarray(events['x']).astype(np.int64)
    y = np.asarray(events['y']).astype(np.int64)
    keep = (x >= 0) & (y >= 0)
    if sensor_size is not None:
        keep &= (x < sensor_size[1]) & (y < sensor_size[0])
    out = np.empty(int(keep.sum()), dtype=EVENT_DTYPE)
    out['x'], out['y'] = x[keep], y[keep]
    out['t'] = np.round(np.asarray(events['t'])[keep]).astype(np.int64)
    out['p'] = np.asarray(events['p'])[keep] > 0
    return out


def _import_tonic_transforms(name):
    try:
        import tonic.transforms
    except ImportError as err:
        raise ConfigError(
            f'TonicTransform(name={name!r}) needs the optional "tonic" '
            f'package ({err}); install it with: {INSTALL_HINT}') from err
    return tonic.transforms


def _tonic_class(name):
    """The class ``tonic.transforms.<name>``; nothing else is reachable.

    Configs (YAML ones included) may not import by dotted path, so a Tonic
    transform is named by its class name alone and looked up only among the
    classes that module itself defines.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(
            f'TonicTransform: name must be the class name of a transform in '
            f'tonic.transforms (such as "Denoise"), got {name!r}; dotted '
            'paths are not accepted')
    module = _import_tonic_transforms(name)
    choices = sorted(n for n, obj in vars(module).items()
                     if isinstance(obj, type) and not n.startswith('_')
                     and obj.__module__ == module.__name__
                     and n != 'Compose')
    if name == 'Compose':
        raise ConfigError('TonicTransform: name="Compose" is not needed; put '
                          'one TonicTransform per pipeline entry')
    if name not in choices:
        close = difflib.get_close_matches(name, choices, n=3, cutoff=0.6)
        hint = (f' Did you mean {", ".join(close)}?' if close else
                f' Known: {", ".join(choices)}.')
        raise ConfigError(f'TonicTransform: tonic.transforms has no '
                          f'transform {name!r}.{hint}')
    return getattr(module, name)


@TRANSFORMS.register_module()
class TonicTransform:
    """Run one Tonic transform (``tonic.transforms.<name>``) in a pipeline.

    ``TonicTransform(name='Denoise', filter_time=10000)`` builds
    ``tonic.transforms.Denoise(filter_time=10000)``. Each call converts
    ``results['events']`` to Tonic's structured array (:data:`TONIC_DTYPE`),
    applies the transform and converts back:

    * events out (Denoise, DropEvent, RandomFlipLR, ...): they replace
      ``results['events']``; events outside ``results['sensor_size']`` are
      removed (as our event transforms do);
    * an array out (ToFrame, ToVoxelGrid, ToTimesurface, ...): it becomes
      ``results['inputs']`` (float32; Tonic frames are ``[T, P, H, W]``),
      the representation step.

    Once ``results['inputs']`` exists (a representation ran), that array is
    what the transform receives (for Tonic transforms on frames such as
    ``ToBinaRep``).

    A Tonic transform that takes ``sensor_size`` gets the sample's, in
    Tonic's order ``(W, H, 2)``, unless the config gives one (then in
    Tonic's order too). Tonic's random transforms draw from numpy's global
    generator, which the runner seeds per worker; the ``seed`` of our own
    transforms does not reach them.

    Args:
        name: class name in ``tonic.transforms`` (no dotted path).
        **kwargs: the Tonic transform's arguments.
    """

    def __init__(self, name, **kwargs):
        self.cls = _tonic_class(name)
        self.name, self.kwargs = name, kwargs
        params = inspect.signature(self.cls).parameters
        try:
            inspect.signature(self.cls).bind_partial(**kwargs)
        except TypeError as err:
            raise ConfigError(
                f'{self!r}: {err}; tonic.transforms.{name} takes '
                f'{", ".join(params) or "no arguments"}') from err
        self.fill_size = 'sensor_size' in params and 'sensor_size' not in kwargs
        self._built = {}  # Tonic sensor size (or None) -> transform
        if not self.fill_size:  # build now: argument errors show at once
            self._built[None] = self._build(kwargs)

    def __repr__(self):
        args = ''.join(f', {k}={v!r}' for k, v in self.kwargs.items())
        return f'TonicTransform(name={self.name!r}{args})'

    def _build(self, kwargs):
        try:
            return self.cls(**kwargs)
        except Exception as err:  # Tonic checks arguments with asserts
            raise ConfigError(f'{self!r}: tonic.transforms.{self.name} '
                              f'refused its arguments: {type(err).__name__}'
                              f'{": " + str(err) if str(err) else ""}'
                              ) from err

    def _transform(self, sensor_size):
        """The Tonic transform for a sample of ``sensor_size`` (H, W)."""
        if not self.fill_size:
            key = None
        elif sensor_size is None:
            raise DataError(f'{self!r} needs the sample\'s "sensor_size" '
                            '(set by every event dataset); or give '
                            'sensor_size=[W, H, 2] in Tonic\'s order')
        else:
            key = tonic_sensor_size(sensor_size)
        if key not in self._built:
            kwargs = dict(self.kwargs)
            if key is not None:
                kwargs['sensor_size'] = key
            self._built[key] = self._build(kwargs)
        return self._built[key]

    def __call__(self, results):
        size = results.get('sensor_size')
        if 'inputs' in results:
            data = np.asarray(results['inputs'])
        elif 'events' in results:
            data = to_tonic_events(results['events'])
        else:
            raise DataError(f'{self!r} needs results["events"] (an event '
                            'dataset with representation=None) or '
                            'results["inputs"]')
        transform = self._transform(size)
        try:
            out = transform(data)
        except Exception as err:
            raise ConfigError(f'{self!r} failed on a sample: '
                              f'{type(err).__name__}: {err}; check its '
                              f'arguments against tonic.transforms.'
                              f'{self.name}') from err
        return self._store(results, out, size)

    def _store(self, results, out, size):
        if hasattr(out, 'to_dense'):  # torch tensors (ToSparseTensor)
            out = out.to_dense()
        if hasattr(out, 'numpy'):
            out = out.detach().cpu().numpy()
        if isinstance(out, np.ndarray) and out.dtype.names:
            results['events'] = from_tonic_events(out, size)
        elif isinstance(out, np.ndarray):
            results['inputs'] = out.astype(np.float32)
        else:
            raise ConfigError(f'{self!r} returned {type(out).__name__}, '
                              'neither events nor an array')
        return results


class TonicView:
    """An event dataset seen the way Tonic's datasets are.

    ``view[i]`` is ``(events, target)``: the sample's events as read from
    its source file (its time window applied; no representation, cache or
    pipeline) in :data:`TONIC_DTYPE`, and its integer label, each passed
    through ``transform`` / ``target_transform`` when given (Tonic's
    convention, so ``tonic.transforms.ToFrame(sensor_size=view.sensor_size,
    ...)`` fits). Attributes as Tonic's datasets: ``sensor_size`` ``(W, H,
    2)``, ``classes``, ``dtype`` and ``ordering``.

    Args:
        dataset: an :class:`~bidl_train.datasets.dvs.EventDataset`.
        transform: callable on the structured events.
        target_transform: callable on the label.
    """

    dtype = TONIC_DTYPE
    ordering = TONIC_DTYPE.names

    def __init__(self, dataset, transform=None, target_transform=None):
        self.dataset = dataset
        self.transform, self.target_transform = transform, target_transform
        self.sensor_size = tonic_sensor_size(dataset.sensor_size)
        self.classes = list(dataset.classes)
        self._loaded = (None, None)  # one recording kept: windows share it

    def __len__(self):
        return len(self.dataset)

    def _events(self, record):
        path = record['path']
        if self._loaded[0] != path:
            self._loaded = (path, self.dataset._read(path))
        return self.dataset._slice(self._loaded[1], record.get('window'))

    def __getitem__(self, index):
        record = self.dataset.records[index]
        events = to_tonic_events(self._events(record))
        target = int(record['label'])
        if self.transform is not None:
            events = self.transform(events)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return events, target

    def __repr__(self):
        return (f'TonicView({type(self.dataset).__name__}, {len(self)} '
                f'samples, sensor_size={self.sensor_size})')
