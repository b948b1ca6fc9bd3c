# LIF f-I curve: 12 trials, each one neuron with its own drive R*I (mV).
# Compare with rate = 1 / (t_ref + tau ln(RI / (RI - theta))), theta = 15 mV
# (summary.json per trial via --trial, spikes.npz has every trial).
dt = 0.05
duration = 500.0
batch = 12
populations = dict(cell=dict(size=1, model=dict(
    type='LIF', tau_m=10.0, v_rest=-65.0, v_reset=-65.0, v_th=-50.0,
    R=1.0, t_ref=2.0)))
inputs = [dict(type='DC', target='cell',
               amplitude=[10.0, 15.0, 15.5, 16.0, 18.0, 20.0, 25.0, 30.0,
                          40.0, 60.0, 80.0, 100.0])]
record = dict(spikes=['cell'], traces=dict(cell=dict(vars=['v'])))
