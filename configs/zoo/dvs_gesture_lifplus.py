# DVS128 Gesture with BIDL's LIFPlus neuron in the clif3flif2dg network:
# conductance-based input (COBE) with reversal voltage, absolute refractory
# period, exponential spike initiation and adaptation current — the switches
# BIDL's LIFPlus exposes, at their documented defaults
# (bidl_train/neurons/lifplus.py). Same data and schedule as dvs_gesture.py.
_base_ = ['../dvs_gesture.py']
model = dict(
    backbone=dict(
        neuron=dict(
            _delete_=True,
            type='LIFPlus',
            input_accum='COBE',
            rev_volt=True,
            refractory='AR',
            spike_init='EXI',
            adaptation='ADT')))
