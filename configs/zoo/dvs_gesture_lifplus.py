# DVS128 Gesture with BIDL's clifplus3flifplus2dg
# (applications/classification/dvs/dvs_gesture/clifplus3flifplus2dg/
# clifplus3flifplus2dg_itout-b16x1-dvsgesture.py, SeqClifplus3Flifplus2DgItout
# in dvs/dvs_gesture/backbone.py): the clif3flif2dg network of
# configs/dvs_gesture.py (input BatchNorm, Conv2dLifPlus 64/128/256 3x3/2,
# FcLifPlus 256, FcLifPlus 11, spikes averaged over time) with BIDL's LIFPlus
# in its shipped switch setting neuron_config=[1, False, 0, 0, 0, 0]: COBE
# conductance, no reversal voltage, refractory, spike initiation, adaptation
# or decay switch; BIDL's equations (formulation='bidl'); membrane BatchNorm
# in every layer (Conv2dLifPlus / FcLifPlus default to norm_state=True);
# spiking convs and FCs, noise 0. Same data and schedule as dvs_gesture.py.
# BIDL draws epsilon and tau_recip uniformly in [0, 1) per layer (its
# SOMA_PARAMS leave them None); here they are LIFPlus's fixed defaults
# (0.5, 0.5). Trainable parameters: 2,013,157, BIDL's count.
_base_ = ['../dvs_gesture.py']
model = dict(
    backbone=dict(
        neuron=dict(
            _delete_=True,
            type='LIFPlus',
            formulation='bidl',
            input_accum='COBE',
            rev_volt=False,
            refractory=None,
            spike_init=None,
            adaptation=None,
            decay=None,
            norm_state=True,
            noise=0.0,
            mode='spike')))
