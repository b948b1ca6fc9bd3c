"""Spike encoders: static values or signals -> spike trains over T steps.

Every encoder is an ``nn.Module`` with no trainable parameters whose
``forward(x, generator=None)`` returns a tensor with a new leading time axis,
``[T, *x.shape]`` (population coding also widens the channel axis), T being
the encoder's ``num_steps`` (``T=`` is accepted as its old name, see
:mod:`bidl_train.utils.time_steps`). They are
registered in :data:`~bidl_train.registry.MODELS`, so a
:class:`~bidl_train.models.data_preprocessor.SpikingDataPreprocessor` with
``encoder=dict(type='RateEncoder', num_steps=20)`` turns a static batch
``[B, C, H, W]`` into ``[T, B, C, H, W]`` on the device; and
the pipeline transform :class:`~bidl_train.datasets.transforms.SpikeEncode`
applies the same encoder to one sample inside a dataset pipeline.

Codes (``x`` is expected in ``[0, 1]``, e.g. pixel intensities / 255):

* :class:`RateEncoder` -- ``p = clip(gain * x + offset, 0, 1)``;
  ``'bernoulli'``: ``s_t ~ Bernoulli(p)``; ``'poisson'``: ``p`` is the
  expected number of events per step of a Poisson process, a step spikes
  when it holds at least one, ``P(s_t = 1) = 1 - exp(-p)``.
* :class:`LatencyEncoder` -- one spike per input, earlier for larger
  values. ``'log'`` (the RC-circuit charging time, BIDL's
  ``Temporal(time_steps=8, tau=7, linear=False)``):
  ``t* = tau * ln(x / (x - threshold))`` for ``x > threshold``;
  ``'linear'``: ``t* = tau * (1 - x)``. The step is
  ``min(round(t*), T - 1)``; inputs ``<= threshold`` never spike.
* :class:`PopulationEncoder` -- ``n`` neurons per input with Gaussian
  receptive fields ``r_j = exp(-(x - mu_j)^2 / (2 sigma^2))``; ``mu_j``
  evenly spaced over ``[low, high]``, ``sigma = (high - low) /
  (beta * (n - 1))`` (Bohte et al. 2002 use ``beta = 1.5``). ``'latency'``
  fires neuron ``j`` once at ``round((1 - r_j) (T - 1))`` when
  ``r_j >= cutoff``; ``'rate'`` draws ``s_t ~ Bernoulli(r_j)``.
* :class:`DeltaEncoder` -- threshold crossing (send-on-delta) for signals
  whose axis ``time_dim`` is time: a reference ``ref`` starts at ``x_0``; at
  each step ``n_up = floor((x_t - ref) / delta)`` ON events (or
  ``n_down`` OFF events) are emitted and ``ref`` moves by ``n * delta``.
  Output ``[T, ..., 2]``: channel 0 = OFF (decrease), 1 = ON (increase),
  the DVS convention of this project.
* :class:`DirectEncoder` -- the analog value at every step,
  ``s_t = gain * x`` (a.k.a. "repeat" / "direct input").

Randomness: ``seed=None`` draws from torch's global generator (seeded by
the runner's ``randomness`` setting); an int seeds a generator owned by the
encoder, so a fresh encoder with the same seed reproduces the same trains.
A ``generator`` passed to ``forward`` overrides both.
"""
import math

import torch
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.registry import MODELS
from bidl_train.utils.time_steps import UNSET, resolve_num_steps


def _positive_int(value, name, owner):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f'{owner}: {name} must be a positive int, got '
                          f'{value!r}')
    return value


def _choice(value, choices, name, owner):
    if value not in choices:
        raise ConfigError(f'{owner}: {name} must be one of {list(choices)}, '
                          f'got {value!r}')
    return value


class _Encoder(nn.Module):
    """Shared generator handling; subclasses implement ``encode``.

    ``num_steps`` is required; ``T`` is its old name (either may be given,
    both only when equal)."""

    def __init__(self, num_steps=UNSET, seed=None, T=UNSET):
        super().__init__()
        owner = type(self).__name__
        steps = resolve_num_steps(owner, num_steps, T=T)
        if steps is None:
            raise ConfigError(f'{owner}: give num_steps (the number of time '
                              'steps to encode over)')
        # name the key the config used, old or new
        key = 'T' if num_steps is UNSET else 'num_steps'
        self.num_steps = _positive_int(steps, key, owner)
        self.seed = seed
        self._generator = None

    def _get_generator(self, device, generator):
        if generator is not None:
            return generator
        if self.seed is None:
            return None
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device)
            self._generator.manual_seed(int(self.seed))
        return self._generator

    def _uniform(self, shape, like, generator):
        return torch.rand(shape, generator=generator, device=like.device,
                          dtype=like.dtype if like.is_floating_point() else
                          torch.float32)

    def forward(self, x, generator=None):
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(x)
        if not x.is_floating_point():
            x = x.float()
        return self.encode(x, self._get_generator(x.device, generator))

    def extra_repr(self):
        return f'num_steps={self.num_steps}, seed={self.seed}'


@MODELS.register_module()
class RateEncoder(_Encoder):
    """Rate (Bernoulli / Poisson) coding: ``[...] -> [T, ...]`` of 0/1.

    Args:
        num_steps (int): time steps (``T``: its old name).
        method (str): ``'bernoulli'`` or ``'poisson'`` (see module doc).
        gain (float): multiplies the input before clipping.
        offset (float): added after the gain.
        seed (int | None): see module doc.
    """

    def __init__(self, num_steps=UNSET, method='bernoulli', gain=1.0,
                 offset=0.0, seed=None, T=UNSET):
        super().__init__(num_steps, seed, T=T)
        self.method = _choice(method, ('bernoulli', 'poisson'), 'method',
                              'RateEncoder')
        self.gain = float(gain)
        self.offset = float(offset)

    def spike_probability(self, x):
        """Per-step firing probability of each input."""
        p = (self.gain * x + self.offset).clamp(0.0, 1.0)
        if self.method == 'poisson':
            p = 1.0 - torch.exp(-p)
        return p

    def encode(self, x, generator):
        p = self.spike_probability(x)
        u = self._uniform((self.num_steps, ) + tuple(x.shape), x, generator)
        return (u < p.unsqueeze(0)).to(x.dtype)


@MODELS.register_module()
class LatencyEncoder(_Encoder):
    """Time-to-first-spike coding: one spike per input above threshold.

    Args:
        num_steps (int): time steps (BIDL's MNIST latency config: 8;
            ``T``: its old name).
        method (str): ``'log'`` (BIDL's default) or ``'linear'``.
        tau (float): time constant in steps (BIDL: 7). ``None`` with
            ``'linear'`` picks ``num_steps - 1`` (``x = 1`` at step 0,
            ``x -> 0`` at the last step).
        threshold (float): inputs ``<= threshold`` never spike.
    """

    def __init__(self, num_steps=UNSET, method='log', tau=7.0, threshold=0.01,
                 T=UNSET):
        super().__init__(num_steps, None, T=T)
        self.method = _choice(method, ('log', 'linear'), 'method',
                              'LatencyEncoder')
        if tau is None:
            tau = self.num_steps - 1
        if tau <= 0:
            raise ConfigError(f'LatencyEncoder: tau must be > 0, got {tau}')
        if not 0.0 <= threshold < 1.0:
            raise ConfigError('LatencyEncoder: threshold must be in [0, 1), '
                              f'got {threshold}')
        self.tau = float(tau)
        self.threshold = float(threshold)

    def spike_times(self, x):
        """Spike step of every input (float); ``inf`` where none fires."""
        fires = x > self.threshold
        safe = torch.where(fires, x, torch.ones_like(x))
        if self.method == 'log':
            t = self.tau * torch.log(safe / (safe - self.threshold))
        else:
            t = self.tau * (1.0 - safe)
        t = torch.clamp(torch.round(t), 0, self.num_steps - 1)
        return torch.where(fires, t, torch.full_like(t, math.inf))

    def encode(self, x, generator):
        t = self.spike_times(x)
        steps = torch.arange(self.num_steps, device=x.device, dtype=x.dtype)
        steps = steps.view((self.num_steps, ) + (1, ) * x.dim())
        return (steps == t.unsqueeze(0)).to(x.dtype)

    def extra_repr(self):
        return (f'num_steps={self.num_steps}, method={self.method}, '
                f'tau={self.tau}, threshold={self.threshold}')


@MODELS.register_module()
class PopulationEncoder(_Encoder):
    """Gaussian receptive-field population coding over ``n`` neurons.

    ``x`` of shape ``[..., C, *rest]`` (``channel_dim`` marks C) becomes
    ``[T, ..., C * n, *rest]``; the neurons of channel ``c`` occupy output
    channels ``c * n .. c * n + n - 1``.

    Args:
        num_steps (int): time steps (BIDL's MNIST population config: 10;
            ``T``: its old name).
        num_neurons (int): neurons per input (BIDL: 5).
        low, high (float): range the centres span.
        beta (float): width factor, ``sigma = (high - low) /
            (beta * (n - 1))``.
        centres (list[float] | None): explicit centres (override low/high).
        sigma (float | None): explicit width.
        spike (str): ``'latency'`` or ``'rate'``.
        cutoff (float): latency mode: responses below it do not fire.
        channel_dim (int): axis of ``x`` holding the channels.
        seed: rate mode only, see module doc.
    """

    def __init__(self,
                 num_steps=UNSET,
                 num_neurons=5,
                 low=0.0,
                 high=1.0,
                 beta=1.5,
                 centres=None,
                 sigma=None,
                 spike='latency',
                 cutoff=0.1,
                 channel_dim=-3,
                 seed=None,
                 T=UNSET):
        super().__init__(num_steps, seed, T=T)
        if centres is None:
            n = _positive_int(num_neurons, 'num_neurons', 'PopulationEncoder')
            if n == 1:
                centres = [(low + high) / 2.0]
            else:
                centres = [low + j * (high - low) / (n - 1) for j in range(n)]
        centres = [float(c) for c in centres]
        if sigma is None:
            if len(centres) < 2:
                raise ConfigError('PopulationEncoder: give sigma when there '
                                  'is a single neuron')
            sigma = (high - low) / (beta * (len(centres) - 1))
        if sigma <= 0:
            raise ConfigError(f'PopulationEncoder: sigma must be > 0, got '
                              f'{sigma}')
        self.num_neurons = len(centres)
        self.register_buffer('centres', torch.tensor(centres),
                             persistent=False)
        self.sigma = float(sigma)
        self.spike = _choice(spike, ('latency', 'rate'), 'spike',
                             'PopulationEncoder')
        self.cutoff = float(cutoff)
        self.channel_dim = int(channel_dim)

    def responses(self, x):
        """``r[..., c, j, *rest]`` in ``[0, 1]``, ``j`` the neuron."""
        if x.dim() == 0 or not -x.dim() <= self.channel_dim < x.dim():
            raise ConfigError(
                f'PopulationEncoder: channel_dim={self.channel_dim} does not '
                f'exist in an input of shape {tuple(x.shape)}')
        dim = self.channel_dim % x.dim()
        mu = self.centres.to(device=x.device, dtype=x.dtype)
        mu = mu.view((-1, ) + (1, ) * (x.dim() - dim - 1))
        xe = x.unsqueeze(dim + 1)
        return torch.exp(-(xe - mu)**2 / (2.0 * self.sigma**2)), dim

    def encode(self, x, generator):
        r, dim = self.responses(x)
        if self.spike == 'latency':
            t = torch.round((1.0 - r) * (self.num_steps - 1))
            steps = torch.arange(self.num_steps, device=x.device,
                                 dtype=x.dtype)
            steps = steps.view((self.num_steps, ) + (1, ) * r.dim())
            out = (steps == t.unsqueeze(0)) & (r >= self.cutoff).unsqueeze(0)
            out = out.to(x.dtype)
        else:
            u = self._uniform((self.num_steps, ) + tuple(r.shape), x,
                              generator)
            out = (u < r.unsqueeze(0)).to(x.dtype)
        # merge (C, n) -> C * n; dims shift by one for the time axis
        return out.flatten(dim + 1, dim + 2)


@MODELS.register_module()
class DeltaEncoder(_Encoder):
    """Send-on-delta threshold crossing of a sampled signal.

    ``x`` has its time axis at ``time_dim``; the output is
    ``[T, *other dims, 2]`` with ``T`` the signal length (channel 0 = OFF
    events, 1 = ON events; event counts, > 1 when the signal jumps by
    several deltas in one step). ``x_0`` only sets the reference, so step 0
    holds no events.

    Args:
        delta (float): threshold step (> 0).
        time_dim (int): axis of ``x`` that is time.
        binary (bool): clip counts to 1 (the reference still moves by every
            crossed delta).
    """

    def __init__(self, delta, time_dim=0, binary=False):
        super().__init__(1, None)
        self.num_steps = None  # the output has as many steps as the signal
        if delta <= 0:
            raise ConfigError(f'DeltaEncoder: delta must be > 0, got {delta}')
        self.delta = float(delta)
        self.time_dim = int(time_dim)
        self.binary = bool(binary)

    def encode(self, x, generator):
        sig = x.movedim(self.time_dim, 0)
        ref = sig[0].clone()
        out = torch.zeros(sig.shape + (2, ), dtype=x.dtype, device=x.device)
        for t in range(1, sig.shape[0]):
            diff = sig[t] - ref
            up = torch.floor(diff.clamp(min=0) / self.delta)
            down = torch.floor((-diff).clamp(min=0) / self.delta)
            ref = ref + (up - down) * self.delta
            out[t, ..., 1] = up
            out[t, ..., 0] = down
        return out.clamp(max=1.0) if self.binary else out

    def extra_repr(self):
        return f'delta={self.delta}, time_dim={self.time_dim}'


@MODELS.register_module()
class DirectEncoder(_Encoder):
    """Direct ("repeat") input: ``s_t = gain * x`` for every one of
    ``num_steps`` steps (``T``: its old name)."""

    def __init__(self, num_steps=UNSET, gain=1.0, T=UNSET):
        super().__init__(num_steps, None, T=T)
        self.gain = float(gain)

    def encode(self, x, generator):
        return (self.gain * x).unsqueeze(0).expand(
            (self.num_steps, ) + tuple(x.shape)).contiguous()

