"""Projections: connectivity, weights, delays and current synapses.

A projection from population ``pre`` (``N_pre``) to ``post`` (``N_post``)
holds a dense weight matrix ``W [N_pre, N_post]`` (0 where unconnected; the
boolean ``mask`` marks existing synapses) and integer delays ``D`` in steps
(>= 1). Synapses are exponential current synapses on one compartment of the
post population:

``I_syn(t) = I_syn(t - dt) exp(-dt / tau_syn) + sum_d W_d^T s_pre(t - d)``

where ``W_d`` keeps the synapses of delay ``d``. With ``tau_syn = 0`` a
spike is a one-step current pulse of charge ``w`` (``I = w / dt`` during the
step of arrival). Negative weights are inhibitory.

Connectivity rules (``connectivity=dict(type=...)``):

* ``'all_to_all'`` -- every pair (``allow_self=False`` drops i -> i when
  pre and post are the same population);
* ``'fixed_probability'`` -- each pair independently with probability ``p``;
* ``'one_to_one'`` -- i -> i (sizes must match).

Weights: a number, or ``dict(type='uniform', low=, high=)`` /
``dict(type='normal', mean=, std=)``. Delays (ms): a number or
``dict(type='uniform', low=, high=)``; rounded to steps, at least 1.
"""
import math

import torch

from bidl_train.errors import ConfigError

CONNECTIVITY = ('all_to_all', 'fixed_probability', 'one_to_one')


def build_mask(rule, n_pre, n_post, same_population, generator, device):
    """Boolean ``[n_pre, n_post]`` of existing synapses."""
    if not isinstance(rule, dict) or rule.get('type') not in CONNECTIVITY:
        raise ConfigError(
            f'connectivity must be dict(type=...) with type in '
            f'{list(CONNECTIVITY)}, got {rule!r}')
    kind = rule['type']
    allowed = {'all_to_all': {'type', 'allow_self'},
               'fixed_probability': {'type', 'p', 'allow_self'},
               'one_to_one': {'type'}}[kind]
    unknown = sorted(set(rule) - allowed)
    if unknown:
        raise ConfigError(f'connectivity {kind!r}: unknown key(s) {unknown}')
    if kind == 'one_to_one':
        if n_pre != n_post:
            raise ConfigError(f'one_to_one needs equal sizes, got {n_pre} -> '
                              f'{n_post}')
        return torch.eye(n_pre, dtype=torch.bool, device=device)
    if kind == 'all_to_all':
        mask = torch.ones(n_pre, n_post, dtype=torch.bool, device=device)
    else:
        p = rule.get('p')
        if p is None or not 0.0 <= p <= 1.0:
            raise ConfigError(f'fixed_probability needs p in [0, 1], got {p}')
        mask = torch.rand(n_pre, n_post, generator=generator,
                          device=device) < p
    if same_population and not rule.get('allow_self', False):
        mask &= ~torch.eye(n_pre, dtype=torch.bool, device=device)
    return mask


def _draw(spec, shape, generator, device, what):
    """A number or a distribution dict -> tensor of ``shape``."""
    if isinstance(spec, (int, float)):
        return torch.full(shape, float(spec), dtype=torch.float64,
                          device=device)
    if isinstance(spec, dict) and spec.get('type') == 'uniform':
        u = torch.rand(shape, generator=generator, device=device,
                       dtype=torch.float64)
        return spec['low'] + (spec['high'] - spec['low']) * u
    if isinstance(spec, dict) and spec.get('type') == 'normal':
        z = torch.randn(shape, generator=generator, device=device,
                        dtype=torch.float64)
        return spec['mean'] + spec['std'] * z
    raise ConfigError(f'{what} must be a number or dict(type="uniform", '
                      f'low=, high=) / dict(type="normal", mean=, std=); got '
                      f'{spec!r}')


class Projection:
    """One projection with its synaptic current state and delay buffer."""

    def __init__(self, name, pre, post, n_pre, n_post, connectivity, weight,
                 delay, dt, generator, device, tau_syn=5.0,
                 compartment='soma', plasticity=None):
        self.name = name
        self.pre, self.post = pre, post
        self.compartment = compartment
        self.tau_syn = float(tau_syn)
        self.mask = build_mask(connectivity, n_pre, n_post, pre == post,
                               generator, device)
        self.weight = _draw(weight, (n_pre, n_post), generator, device,
                            f'projection {name}: weight') * self.mask
        delay_ms = _draw(delay, (n_pre, n_post), generator, device,
                         f'projection {name}: delay')
        if (delay_ms < 0).any():
            raise ConfigError(f'projection {name}: delays must be >= 0 ms')
        self.delay = torch.clamp(torch.round(delay_ms / dt), min=1).long()
        self.max_delay = int(self.delay.max()) if self.delay.numel() else 1
        self.delay_values = sorted(set(self.delay[self.mask].tolist())) or [1]
        self.dt = float(dt)
        self.decay = 0.0 if self.tau_syn == 0 else math.exp(-dt /
                                                            self.tau_syn)
        self.plasticity = plasticity

    def init_state(self, batch, n_pre, n_post, device):
        """Ring buffer of past pre spikes and the synaptic current."""
        return dict(
            buffer=torch.zeros(self.max_delay + 1, batch, n_pre,
                               dtype=torch.float64, device=device),
            current=torch.zeros(batch, n_post, dtype=torch.float64,
                                device=device))

    def arriving(self, state, step):
        """Synaptic drive ``sum_i W_ij s_i(t - D_ij)`` of this step ``[B, N]``.

        One delay for all synapses: a matrix product with the spikes of
        ``t - d``. Several delays: every synapse gathers its own past
        spike from the ring buffer.
        """
        size = self.max_delay + 1
        if len(self.delay_values) == 1:
            return state['buffer'][(step - self.delay_values[0]) % size] @ \
                self.weight
        if 'pre_index' not in state:
            n_pre = self.weight.shape[0]
            state['pre_index'] = torch.arange(
                n_pre, device=self.weight.device).view(-1, 1).expand_as(
                    self.delay)
        slots = (step - self.delay) % size  # [N_pre, N_post]
        past = state['buffer'][slots, :, state['pre_index']]  # [Npre,Npost,B]
        return torch.einsum('ijb,ij->bj', past, self.weight)

    def advance(self, state, step):
        """Update and return the synaptic current for this step."""
        drive = self.arriving(state, step)
        if self.tau_syn == 0:
            state['current'] = drive / self.dt
        else:
            state['current'] = state['current'] * self.decay + drive
        return state['current']

    def push(self, state, step, pre_spikes):
        """Store this step's pre spikes for later arrival."""
        state['buffer'][step % (self.max_delay + 1)] = pre_spikes.to(
            state['buffer'].dtype)
