# A small cortical E/I network after Izhikevich (2003): 160 excitatory
# neurons (RS, with some IB and CH cells) and 40 fast-spiking inhibitory
# ones, all-to-all, excitatory weights uniform in [0, 0.5], inhibitory in
# [-1, 0], one-step current pulses (tau_syn = 0) arriving after 1 ms; driven
# by a "thalamic" Poisson population through plastic (STDP) synapses.
# Run: python tools/simulate.py configs/neurosim/ei_network.py
dt = 0.5          # ms (the paper's step)
duration = 1000.0  # ms
batch = 1
seed = 0
device = 'cpu'

_exc_regimes = ['RS'] * 128 + ['IB'] * 16 + ['CH'] * 16
populations = dict(
    exc=dict(size=160, model=dict(type='Izhikevich', regime=_exc_regimes)),
    inh=dict(size=40, model=dict(type='Izhikevich', regime='FS')),
    thalamus=dict(size=200, model=dict(type='PoissonSource', rate=15.0)),
)
projections = [
    dict(pre='exc', post='exc', connectivity=dict(type='all_to_all'),
         weight=dict(type='uniform', low=0.0, high=0.5), delay=1.0,
         tau_syn=0.0),
    dict(pre='exc', post='inh', connectivity=dict(type='all_to_all'),
         weight=dict(type='uniform', low=0.0, high=0.5), delay=1.0,
         tau_syn=0.0),
    dict(pre='inh', post='exc', connectivity=dict(type='all_to_all'),
         weight=dict(type='uniform', low=-1.0, high=0.0), delay=1.0,
         tau_syn=0.0),
    dict(pre='inh', post='inh', connectivity=dict(type='all_to_all'),
         weight=dict(type='uniform', low=-1.0, high=0.0), delay=1.0,
         tau_syn=0.0),
    dict(pre='thalamus', post='exc',
         connectivity=dict(type='fixed_probability', p=0.1),
         weight=6.0, delay=1.0, tau_syn=0.0,
         plasticity=dict(type='STDP', A_plus=0.1, A_minus=0.12,
                         tau_plus=20.0, tau_minus=20.0, w_min=0.0,
                         w_max=10.0)),
    dict(pre='thalamus', post='inh',
         connectivity=dict(type='fixed_probability', p=0.1),
         weight=4.0, delay=1.0, tau_syn=0.0),
]
inputs = []
record = dict(
    spikes=['exc', 'inh', 'thalamus'],
    traces=dict(exc=dict(vars=['v', 'u'], neurons=[0, 1, 150]),
                inh=dict(vars=['v'], neurons=[0])))
