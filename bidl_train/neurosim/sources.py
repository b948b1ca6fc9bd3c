"""Spike sources (populations without dynamics) and injected currents.

* :class:`PoissonSource` -- each neuron spikes in a step with probability
  ``rate * dt / 1000`` (rate in Hz, dt in ms): a Bernoulli approximation of
  a Poisson process, exact in the limit ``rate * dt -> 0``.
* :class:`SpikeFileSource` -- replays given spike times: ``times`` (ms) and
  ``indices`` (neuron), inline or from an ``.npz`` holding those two arrays;
  a spike at time t falls in step ``round(t / dt)``. All trials of a batch
  replay the same spikes.
* :class:`DCInput` -- a constant current ``amplitude`` injected into a
  population (one compartment) for ``start <= t < stop``; ``amplitude`` may
  be a list with one value per trial (``batch`` entries), e.g. to measure an
  f-I curve in one run.
"""
import os.path as osp

import numpy as np
import torch

from bidl_train.errors import ConfigError, DataError


class PoissonSource:
    """Independent Poisson spike trains at ``rate`` Hz."""

    variables = ()
    compartments = ()

    def __init__(self, rate):
        if rate < 0:
            raise ConfigError(f'PoissonSource: rate must be >= 0 Hz, got '
                              f'{rate}')
        self.rate = float(rate)

    def init_state(self, batch, size, device, dtype=torch.float64):
        return dict(shape=torch.zeros(batch, size, device=device,
                                      dtype=dtype))

    def spikes(self, state, step, dt, generator):
        p = self.rate * dt / 1000.0
        u = torch.rand(state['shape'].shape, generator=generator,
                       device=state['shape'].device)
        return u < p


class SpikeFileSource:
    """Replay of fixed spike times (see module doc)."""

    variables = ()
    compartments = ()

    def __init__(self, file=None, times=None, indices=None):
        if file is not None:
            if not osp.isfile(file):
                raise DataError('spike file not found', path=file)
            try:
                with np.load(file, allow_pickle=False) as npz:
                    missing = {'times', 'indices'} - set(npz.files)
                    if missing:
                        raise DataError(
                            f'spike file needs arrays "times" (ms) and '
                            f'"indices"; missing {sorted(missing)}',
                            path=file)
                    times, indices = npz['times'], npz['indices']
            except (OSError, ValueError) as e:
                if isinstance(e, DataError):
                    raise
                raise DataError(f'not a readable .npz ({e})',
                                path=file) from None
        if times is None or indices is None:
            raise ConfigError('SpikeFileSource: give file=... or both '
                              'times=[...] and indices=[...]')
        self.times = np.asarray(times, dtype=np.float64).ravel()
        self.indices = np.asarray(indices, dtype=np.int64).ravel()
        if self.times.shape != self.indices.shape:
            raise DataError(
                f'{len(self.times)} spike times but {len(self.indices)} '
                'indices', path=file)
        self.file = file
        self._table = None

    def init_state(self, batch, size, device, dtype=torch.float64):
        if len(self.indices) and (self.indices.min() < 0
                                  or self.indices.max() >= size):
            raise DataError(
                f'spike indices must be 0..{size - 1} (the population '
                f'size), found {self.indices.min()}..{self.indices.max()}',
                path=self.file)
        return dict(shape=torch.zeros(batch, size, device=device,
                                      dtype=dtype))

    def spikes(self, state, step, dt, generator):
        if self._table is None or self._table[0] != dt:
            steps = np.rint(self.times / dt).astype(np.int64)
            by_step = {}
            for s, i in zip(steps, self.indices):
                by_step.setdefault(int(s), []).append(int(i))
            self._table = (dt, by_step)
        out = torch.zeros(state['shape'].shape, dtype=torch.bool,
                          device=state['shape'].device)
        hit = self._table[1].get(step)
        if hit:
            out[:, hit] = True
        return out


class DCInput:
    """Constant current into one compartment of a population."""

    def __init__(self, target, amplitude, start=0.0, stop=None,
                 compartment='soma'):
        self.target = target
        self.amplitude = amplitude
        self.start = float(start)
        self.stop = None if stop is None else float(stop)
        self.compartment = compartment

    def current(self, t, batch, size, device, dtype):
        """Current ``[B, N]`` at time t (ms), or None when off."""
        if t < self.start or (self.stop is not None and t >= self.stop):
            return None
        amp = torch.as_tensor(self.amplitude, dtype=dtype, device=device)
        if amp.dim() == 0:
            return amp.expand(batch, size)
        if amp.dim() == 1 and amp.numel() == batch:
            return amp.view(batch, 1).expand(batch, size)
        if amp.dim() == 1 and amp.numel() == size:
            return amp.view(1, size).expand(batch, size)
        raise ConfigError(
            f'DC input into {self.target!r}: amplitude must be a scalar, '
            f'one value per trial ({batch}) or per neuron ({size}); got '
            f'shape {tuple(amp.shape)}')


SOURCE_MODELS = {
    'PoissonSource': PoissonSource,
    'SpikeFileSource': SpikeFileSource,
}
