# Hodgkin-Huxley f-I curve in one run: 8 trials side by side, each one
# squid-axon neuron with its own DC step (uA/cm^2). Repetitive firing
# starts between 6.2 and 6.3; spikes peak near +40 mV.
# Run: python tools/simulate.py configs/neurosim/hh_fi.py
dt = 0.025
duration = 300.0
batch = 8
populations = dict(axon=dict(size=1, model=dict(type='HodgkinHuxley')))
inputs = [dict(type='DC', target='axon', start=20.0,
               amplitude=[2.0, 5.0, 6.0, 6.5, 8.0, 10.0, 15.0, 20.0])]
record = dict(spikes=['axon'], traces=dict(axon=dict(vars=['v', 'm', 'h',
                                                            'n'])))
