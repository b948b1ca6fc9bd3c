"""Event-level augmentations on ``results['events']`` (before integration).

Each takes ``prob`` (chance of being applied to a sample) and ``seed``
(None: draws follow the run's seed, different per worker and epoch; an int:
a private generator, the same stream on every run; see
:mod:`bidl_train.datasets.seeding`). Coordinates stay inside ``results['sensor_size']``: events pushed
outside are removed, as a real sensor would not see them.
"""
import numpy as np

from bidl_train.datasets.seeding import TransformRNG
from bidl_train.errors import DataError
from bidl_train.registry import TRANSFORMS


class _EventTransform:

    def __init__(self, prob=0.5, seed=None):
        if not 0 <= prob <= 1:
            raise DataError(f'{type(self).__name__}: prob must be in [0, 1], '
                            f'got {prob}')
        self.prob = prob
        self.rng = TransformRNG(seed)

    def __call__(self, results):
        if 'events' not in results:
            raise DataError(f'{type(self).__name__} needs results["events"]; '
                            'use it with representation=None and put it '
                            'before the representation transform')
        if self.rng.random() < self.prob:
            results['events'] = self.apply(results['events'].copy(),
                                           results['sensor_size'])
        return results


def _inside(events, sensor_size, x, y):
    h, w = sensor_size
    keep = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    events = events[keep]
    events['x'], events['y'] = x[keep], y[keep]
    return events


@TRANSFORMS.register_module()
class EventFlipLR(_EventTransform):
    """Mirror left-right: ``x' = W - 1 - x``."""

    def apply(self, events, sensor_size):
        events['x'] = sensor_size[1] - 1 - events['x'].astype(np.int64)
        return events


@TRANSFORMS.register_module()
class EventSpatialJitter(_EventTransform):
    """Add independent Gaussian noise (``std`` px, rounded) to x and y."""

    def __init__(self, std=1.0, prob=1.0, seed=None):
        super().__init__(prob, seed)
        self.std = std

    def apply(self, events, sensor_size):
        x = events['x'] + np.rint(self.rng.normal(0, self.std, len(events)))
        y = events['y'] + np.rint(self.rng.normal(0, self.std, len(events)))
        return _inside(events, sensor_size, x.astype(np.int64),
                       y.astype(np.int64))


@TRANSFORMS.register_module()
class EventShift(_EventTransform):
    """Shift all events by one random (dx, dy) in ``[-max_shift, max_shift]``."""

    def __init__(self, max_shift=8, prob=1.0, seed=None):
        super().__init__(prob, seed)
        self.max_shift = max_shift

    def apply(self, events, sensor_size):
        dx, dy = self.rng.integers(-self.max_shift, self.max_shift + 1, 2)
        return _inside(events, sensor_size,
                       events['x'].astype(np.int64) + dx,
                       events['y'].astype(np.int64) + dy)


@TRANSFORMS.register_module()
class EventDrop(_EventTransform):
    """Remove each event with probability ``ratio``."""

    def __init__(self, ratio=0.1, prob=1.0, seed=None):
        super().__init__(prob, seed)
        self.ratio = ratio

    def apply(self, events, sensor_size):
        return events[self.rng.random(len(events)) >= self.ratio]


@TRANSFORMS.register_module()
class EventTimeScale(_EventTransform):
    """Scale time around the first event by a factor in ``[low, high]``:
    ``t' = t0 + round((t - t0) * s)``."""

    def __init__(self, low=0.8, high=1.2, prob=1.0, seed=None):
        super().__init__(prob, seed)
        self.low, self.high = low, high

    def apply(self, events, sensor_size):
        if len(events):
            s = self.rng.uniform(self.low, self.high)
            t0 = events['t'][0]
            events['t'] = t0 + np.rint((events['t'] - t0) * s).astype(np.int64)
        return events


@TRANSFORMS.register_module()
class PolarityFlip(_EventTransform):
    """Swap ON and OFF: ``p' = 1 - p``."""

    def apply(self, events, sensor_size):
        events['p'] = 1 - events['p']
        return events


@TRANSFORMS.register_module()
class EventTimeJitter(_EventTransform):
    """Jitter every timestamp independently:
    ``t' = max(0, t + round(N(0, std)))`` (``std`` in us), then re-sort the
    events by ``t'`` (stable, so equal times keep their order): integration
    by number and by time assumes time order.
    """

    def __init__(self, std=100.0, prob=1.0, seed=None):
        super().__init__(prob, seed)
        if std < 0:
            raise DataError(f'EventTimeJitter: std must be >= 0, got {std}')
        self.std = std

    def apply(self, events, sensor_size):
        noise = np.rint(self.rng.normal(0, self.std, len(events)))
        t = np.maximum(events['t'] + noise.astype(np.int64), 0)
        events['t'] = t
        return events[np.argsort(t, kind='stable')]
