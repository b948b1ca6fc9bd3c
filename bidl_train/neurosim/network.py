"""A network of populations and projections, built from a config.

Config (Python or YAML, read with mmengine's ``Config``)::

    dt = 0.1            # ms, fixed step
    duration = 1000.0   # ms
    batch = 1           # independent trials run side by side
    seed = 0
    device = 'cpu'      # or 'cuda'
    populations = dict(
        exc=dict(size=80, model=dict(type='Izhikevich', regime='RS')),
        noise=dict(size=50, model=dict(type='PoissonSource', rate=20.0)),
    )
    projections = [
        dict(pre='noise', post='exc',
             connectivity=dict(type='fixed_probability', p=0.2),
             weight=2.0, delay=1.0, tau_syn=5.0, compartment='soma',
             plasticity=dict(type='STDP', A_plus=0.01, w_max=5.0)),
    ]
    inputs = [dict(type='DC', target='exc', amplitude=5.0, start=100.0)]
    record = dict(spikes=['exc'],
                  traces=dict(exc=dict(vars=['v'], neurons=[0, 1])))

Per step ``t`` (index ``k``): every projection delivers the spikes that
arrive now (see :mod:`.projections`), currents are summed per population
and compartment together with the DC inputs, every population advances by
``dt``, spikes are recorded and stored for later arrival, then STDP
updates the plastic projections.
"""
import torch

from bidl_train.errors import ConfigError

from .neurons import NEURON_MODELS
from .plasticity import PLASTICITY_RULES
from .projections import Projection
from .sources import SOURCE_MODELS, DCInput

TOP_LEVEL_KEYS = {'dt', 'duration', 'batch', 'seed', 'device', 'dtype',
                  'populations', 'projections', 'inputs', 'record'}
PROJECTION_KEYS = {'pre', 'post', 'connectivity', 'weight', 'delay',
                   'tau_syn', 'compartment', 'plasticity', 'name'}


def _build_model(pop_name, spec):
    if not isinstance(spec, dict) or 'type' not in spec:
        raise ConfigError(f'populations.{pop_name}.model must be a dict with '
                          f'a "type"')
    spec = dict(spec)
    kind = spec.pop('type')
    table = dict(NEURON_MODELS, **SOURCE_MODELS)
    if kind not in table:
        raise ConfigError(f'populations.{pop_name}.model.type: unknown model '
                          f'{kind!r}; known: {sorted(table)}')
    try:
        return table[kind](**spec)
    except TypeError as e:
        raise ConfigError(f'populations.{pop_name}.model: {e}') from None


class SimulationResult:
    """Recorded spikes (sparse) and traces of one run.

    Attributes:
        spikes (dict): ``pop -> (trial, step, neuron)`` int64 arrays of every
            recorded spike.
        traces (dict): ``pop -> {var: float array [steps, B, n_recorded]}``.
        trace_neurons (dict): ``pop -> recorded neuron indices``.
        sizes (dict): population sizes; ``dt``, ``duration``, ``batch``.
    """

    def __init__(self, spikes, traces, trace_neurons, sizes, dt, duration,
                 batch, weights):
        self.spikes = spikes
        self.traces = traces
        self.trace_neurons = trace_neurons
        self.sizes = sizes
        self.dt = dt
        self.duration = duration
        self.batch = batch
        self.weights = weights

    def spike_times(self, pop, trial=0):
        """``(times ms, neuron indices)`` of one trial."""
        tr, step, idx = self.spikes[pop]
        keep = tr == trial
        return step[keep] * self.dt, idx[keep]


class Network:
    """Populations + projections + inputs, simulated with a fixed step."""

    def __init__(self, populations, projections=(), inputs=(), record=None,
                 dt=0.1, duration=100.0, batch=1, seed=0, device='cpu',
                 dtype='float64'):
        if dt <= 0 or duration <= 0:
            raise ConfigError(f'dt and duration must be > 0, got dt={dt}, '
                              f'duration={duration}')
        self.dt, self.duration = float(dt), float(duration)
        self.batch = int(batch)
        self.device = torch.device(device)
        self.dtype = getattr(torch, dtype)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))
        if not populations:
            raise ConfigError('the network needs at least one population')
        self.sizes, self.models = {}, {}
        for name, spec in populations.items():
            unknown = sorted(set(spec) - {'size', 'model'})
            if unknown:
                raise ConfigError(f'populations.{name}: unknown key(s) '
                                  f'{unknown} (allowed: size, model)')
            size = spec.get('size')
            if not isinstance(size, int) or size < 1:
                raise ConfigError(f'populations.{name}.size must be a '
                                  f'positive int, got {size!r}')
            self.sizes[name] = size
            self.models[name] = _build_model(name, spec.get('model'))
        self.projections = [
            self._build_projection(i, p) for i, p in enumerate(projections)
        ]
        self.inputs = [self._build_input(i, s) for i, s in enumerate(inputs)]
        self.record = self._check_record(record or {})

    # -- construction ------------------------------------------------------
    def _check_pop(self, name, where):
        if name not in self.sizes:
            raise ConfigError(f'{where}: unknown population {name!r}; known: '
                              f'{sorted(self.sizes)}')

    def _check_compartment(self, pop, compartment, where):
        model = self.models[pop]
        if compartment not in model.compartments:
            raise ConfigError(
                f'{where}: population {pop!r} ({type(model).__name__}) has '
                f'no input compartment {compartment!r} (has '
                f'{list(model.compartments)})')

    def _build_projection(self, i, spec):
        where = f'projections[{i}]'
        unknown = sorted(set(spec) - PROJECTION_KEYS)
        if unknown:
            raise ConfigError(f'{where}: unknown key(s) {unknown}; allowed: '
                              f'{sorted(PROJECTION_KEYS)}')
        for key in ('pre', 'post', 'connectivity', 'weight'):
            if key not in spec:
                raise ConfigError(f'{where}: missing key {key!r}')
        pre, post = spec['pre'], spec['post']
        self._check_pop(pre, f'{where}.pre')
        self._check_pop(post, f'{where}.post')
        compartment = spec.get('compartment', 'soma')
        self._check_compartment(post, compartment, where)
        plasticity = spec.get('plasticity')
        if plasticity is not None:
            plasticity = dict(plasticity)
            kind = plasticity.pop('type', None)
            if kind not in PLASTICITY_RULES:
                raise ConfigError(f'{where}.plasticity.type must be one of '
                                  f'{sorted(PLASTICITY_RULES)}, got {kind!r}')
            plasticity = PLASTICITY_RULES[kind](**plasticity)
        return Projection(
            spec.get('name', f'{pre}->{post}'), pre, post, self.sizes[pre],
            self.sizes[post], spec['connectivity'], spec['weight'],
            spec.get('delay', self.dt), self.dt, self.generator, self.device,
            tau_syn=spec.get('tau_syn', 5.0), compartment=compartment,
            plasticity=plasticity)

    def _build_input(self, i, spec):
        where = f'inputs[{i}]'
        spec = dict(spec)
        kind = spec.pop('type', None)
        if kind != 'DC':
            raise ConfigError(
                f'{where}.type must be "DC" (Poisson and spike-file inputs '
                'are populations: model=dict(type="PoissonSource") / '
                f'"SpikeFileSource" plus a projection); got {kind!r}')
        unknown = sorted(
            set(spec) - {'target', 'amplitude', 'start', 'stop',
                         'compartment'})
        if unknown:
            raise ConfigError(f'{where}: unknown key(s) {unknown}')
        if 'target' not in spec or 'amplitude' not in spec:
            raise ConfigError(f'{where}: needs target and amplitude')
        self._check_pop(spec['target'], f'{where}.target')
        self._check_compartment(spec['target'],
                                spec.get('compartment', 'soma'), where)
        return DCInput(**spec)

    def _check_record(self, record):
        unknown = sorted(set(record) - {'spikes', 'traces'})
        if unknown:
            raise ConfigError(f'record: unknown key(s) {unknown} (allowed: '
                              'spikes, traces)')
        spikes = record.get('spikes', list(self.sizes))
        for pop in spikes:
            self._check_pop(pop, 'record.spikes')
        traces = {}
        for pop, spec in (record.get('traces') or {}).items():
            self._check_pop(pop, 'record.traces')
            variables = list(spec.get('vars', ['v']))
            for var in variables:
                if var not in self.models[pop].variables:
                    raise ConfigError(
                        f'record.traces.{pop}: {type(self.models[pop]).__name__}'
                        f' has no variable {var!r} (has '
                        f'{list(self.models[pop].variables)})')
            neurons = list(spec.get('neurons', range(self.sizes[pop])))
            if neurons and (min(neurons) < 0
                            or max(neurons) >= self.sizes[pop]):
                raise ConfigError(f'record.traces.{pop}.neurons must be in '
                                  f'0..{self.sizes[pop] - 1}')
            traces[pop] = (variables, neurons)
        return dict(spikes=list(spikes), traces=traces)

    @classmethod
    def from_config(cls, cfg):
        """Build from an mmengine ``Config`` or a plain dict."""
        cfg = {k: v for k, v in dict(cfg).items() if not k.startswith('_')}
        unknown = sorted(set(cfg) - TOP_LEVEL_KEYS)
        if unknown:
            raise ConfigError(f'unknown top-level key(s) {unknown}; allowed: '
                              f'{sorted(TOP_LEVEL_KEYS)}')
        return cls(**cfg)

    # -- simulation --------------------------------------------------------
    def run(self):
        """Simulate ``duration`` ms; returns a :class:`SimulationResult`."""
        steps = int(round(self.duration / self.dt))
        B, dev, dtype = self.batch, self.device, self.dtype
        states = {
            name: model.init_state(B, self.sizes[name], dev, dtype)
            for name, model in self.models.items()
        }
        proj_states = [
            p.init_state(B, self.sizes[p.pre], self.sizes[p.post], dev)
            for p in self.projections
        ]
        plastic_states = [
            p.plasticity.init_state(B, self.sizes[p.pre], self.sizes[p.post],
                                    dev) if p.plasticity else None
            for p in self.projections
        ]
        spike_log = {pop: [] for pop in self.record['spikes']}
        trace_log = {
            pop: {var: [] for var in spec[0]}
            for pop, spec in self.record['traces'].items()
        }
        with torch.no_grad():
            for k in range(steps):
                t = k * self.dt
                currents = {name: {} for name in self.models}

                def add(pop, compartment, value):
                    cur = currents[pop].get(compartment)
                    currents[pop][compartment] = value.to(dtype) if \
                        cur is None else cur + value.to(dtype)

                for p, st in zip(self.projections, proj_states):
                    add(p.post, p.compartment, p.advance(st, k))
                for inp in self.inputs:
                    value = inp.current(t, B, self.sizes[inp.target], dev,
                                        dtype)
                    if value is not None:
                        add(inp.target, inp.compartment, value)
                spikes = {}
                for name, model in self.models.items():
                    if hasattr(model, 'spikes'):  # a source
                        spikes[name] = model.spikes(states[name], k, self.dt,
                                                    self.generator)
                    else:
                        states[name], spikes[name] = model.step(
                            states[name], currents[name], self.dt)
                for pop, log in spike_log.items():
                    log.append(spikes[pop])
                for pop, (variables, neurons) in self.record['traces'].items():
                    peak = getattr(self.models[pop], 'spike_peak', None)
                    for var in variables:
                        value = states[pop][var]
                        if var == 'v' and peak is not None:
                            # draw the spike: the reset already happened
                            value = torch.where(spikes[pop],
                                                torch.full_like(value, peak),
                                                value)
                        trace_log[pop][var].append(value[:, neurons].cpu())
                for p, st, ps in zip(self.projections, proj_states,
                                     plastic_states):
                    p.push(st, k, spikes[p.pre])
                    if p.plasticity is not None:
                        p.plasticity.update(p, ps, spikes[p.pre],
                                            spikes[p.post], self.dt)
        return self._result(spike_log, trace_log)

    def _result(self, spike_log, trace_log):
        spikes = {}
        for pop, log in spike_log.items():
            # [steps, B, N] -> sparse (trial, step, neuron)
            nz = torch.nonzero(torch.stack(log)).cpu().numpy() if log else \
                torch.zeros(0, 3, dtype=torch.long).numpy()
            spikes[pop] = (nz[:, 1], nz[:, 0], nz[:, 2])
        traces = {
            pop: {var: torch.stack(vals).numpy()
                  for var, vals in d.items() if vals}
            for pop, d in trace_log.items()
        }
        neurons = {pop: spec[1] for pop, spec in self.record['traces'].items()}
        weights = {p.name: p.weight.cpu().numpy() for p in self.projections}
        return SimulationResult(spikes, traces, neurons, dict(self.sizes),
                                self.dt, self.duration, self.batch, weights)


def simulate(cfg):
    """Build a :class:`Network` from ``cfg`` and run it."""
    return Network.from_config(cfg).run()
