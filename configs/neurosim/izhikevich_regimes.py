# The seven firing regimes of Izhikevich (2003), one neuron each, driven by
# a DC step I = 10 from 50 ms: RS adapts, IB bursts then spikes tonically,
# CH chatters, FS fires fast, LTS adapts from a high initial rate, TC and RZ.
# Run: python tools/simulate.py configs/neurosim/izhikevich_regimes.py
dt = 0.25
duration = 1000.0
seed = 0
_regimes = ['RS', 'IB', 'CH', 'FS', 'LTS', 'TC', 'RZ']
populations = dict(
    cells=dict(size=7, model=dict(type='Izhikevich', regime=_regimes)))
inputs = [dict(type='DC', target='cells', amplitude=10.0, start=50.0)]
record = dict(spikes=['cells'],
              traces=dict(cells=dict(vars=['v'], neurons=[0, 1, 2, 3, 4])))
