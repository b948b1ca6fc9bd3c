"""Deployed versus PyTorch: the same samples through both, compared.

The reference is the trained model itself, not the lowered copy: its
multi-step logits (``model(x_seq, mode='tensor')``), its spikes (forward
hooks on every spiking neuron) and its single-step outputs and states
(``model.step``). The deployed artefact runs in its own runtime in a closed
loop, feeding its own new states back, exactly as a deployment would.

Reported per output name: the largest absolute difference over all steps
(and the largest absolute value PyTorch gave, its scale);
for spikes also the fraction of equal spikes; and the top-1 class of both
(and their accuracy when labels are known).

Plastic layers with a persistent local weight that learn at inference
write their buffers at the end of a multi-step call; the reference run
restores them, so the model's step form (and the caller's model) start
from the same local weight as the export. How far each learning layer's
local weight moved over the steps is reported (``local_weight_change``).

Threshold ties are synchronised, not cascaded. A membrane that lies within
float rounding of its threshold (``|u - theta|`` ~ 1e-7) may fire in one
runtime and not in the other (another order of the sums in a conv), and a
hard reset then moves that neuron's membrane by ``alpha (theta - v0)``: every
later step would differ although neither side is wrong. So the deployed
artefact runs first (closed loop, untouched), and PyTorch's runs follow with
every neuron's ``neuronal_fire`` watched (:class:`TieSync`): where PyTorch's
spike differs from the deployed one and PyTorch's membrane lies within
``TIE_RTOL * max(1, |theta|, max |u| of the layer at that step)`` of the
threshold, PyTorch takes the deployed spike (counted, with layer, step and
margin, in ``ties_synchronised``) and both go on from the same spikes. A
spike that differs anywhere else is not touched and fails
(``max_abs_diff['spikes.<layer>']``), and so does any output or state that
differs beyond tolerance after the synchronisation. The multi-step form runs
its neurons step by step for this (the fused kernels do not call
``neuronal_fire``; they give the same numbers).

An export with a ``teacher`` input (a layer learning from a reward) is
verified twice, with learning really exercised: once with the samples'
labels as teacher (the model gets the same labels through
:func:`~bidl_train.learning.teacher.teaching`, as in training) and once with ``-1`` for every sample (no
label: no reward update), both over all steps.
"""
import contextlib
import functools
import time

import numpy as np
import torch

from bidl_train.errors import ConfigError
from bidl_train.learning.plastic import PlasticLayer
from bidl_train.learning.teacher import teaching
from bidl_train.neurons import BaseNeuron
from bidl_train.utils.progress import track
from bidl_train.utils.state import flatten_state

__all__ = ['flatten_state', 'reference_run', 'verify', 'measure_latency',
           'batch_initial_states', 'threshold_ties', 'TieSync',
           'TIE_RTOL']


@contextlib.contextmanager
def _kept_local_weights(model):
    """Restore every persistent plastic buffer on exit (a multi-step call
    of a learning layer commits its new local weight into them)."""
    saved = [(layer, {name: value.clone() for name, value in
                      layer.local_state_dict().items()})
             for layer in model.modules() if isinstance(layer, PlasticLayer)]
    try:
        yield
    finally:
        for layer, values in saved:
            for name, value in values.items():
                getattr(layer, name).copy_(value)


#: A flipped spike is a threshold tie where PyTorch's membrane lies within
#: this fraction of ``max(1, |theta|, max |u| of the layer at that step)``
#: of the threshold: the same relative tolerance the states are held to
#: (``FP32_LOGIT_ATOL`` in :mod:`~bidl_train.deploy.api`), so a tie is a
#: flip that a membrane within the state tolerance can cause.
TIE_RTOL = 1e-4

#: At most this many tie events are listed one by one in the report.
MAX_LISTED_TIES = 50


class TieSync:
    """Watch (and at ties, synchronise) PyTorch's spikes against the
    deployed ones.

    ``deployed``: ``{layer: [spikes of step 0, 1, ...]}`` (numpy), the
    deployed artefact's closed-loop spikes of every neuron it exports.
    Within :meth:`run`, every neuron module that fires through
    ``neuronal_fire`` counts its calls (the k-th call is step k, in both
    execution forms) and compares its spikes with the deployed ones of that
    step: a difference at a tie takes the deployed spike (when ``sync``),
    any other difference is a mismatch. ``sync=False`` only records (the
    comparison as it was before ties were synchronised).
    """

    def __init__(self, model, deployed, rtol=TIE_RTOL, sync=True):
        self.model, self.deployed = model, deployed
        self.rtol, self.sync = rtol, sync
        #: per form: tie events ``dict(layer, step, count, margin, tolerance)``
        self.ties = {}
        #: per form: ``{layer: dict(count, first_step, closest)}`` of spikes
        #: that differ away from a tie
        self.mismatches = {}

    @contextlib.contextmanager
    def run(self, form, loop_neurons=False):
        """Watch one run of the model in ``form`` (``'step'`` or
        ``'multi-step'``); ``loop_neurons``: run every watched neuron's
        multi-step form as its step loop (the fused kernels do not call
        ``neuronal_fire``)."""
        ties = self.ties.setdefault(form, [])
        mismatches = self.mismatches.setdefault(form, {})
        patched = []
        for name, module in self.model.named_modules():
            if not (isinstance(module, BaseNeuron) and
                    hasattr(module, 'neuronal_fire')):
                continue
            calls = [0]

            def fire(u, threshold, module=module, name=name, calls=calls):
                s = type(module).neuronal_fire(module, u, threshold)
                step = calls[0]
                calls[0] += 1
                return self._watch(name, step, u, threshold, s, ties,
                                   mismatches)
            module.neuronal_fire = fire
            if loop_neurons:
                module.forward = functools.partial(BaseNeuron.forward, module)
            patched.append(module)
        try:
            yield
        finally:
            for module in patched:
                del module.neuronal_fire
                module.__dict__.pop('forward', None)

    def _watch(self, name, step, u, threshold, s, ties, mismatches):
        steps = self.deployed.get(name)
        if steps is None or step >= len(steps):
            return s
        got = torch.as_tensor(np.asarray(steps[step], np.float32)) > 0.5
        if got.numel() != s.numel():
            return s
        got = got.reshape(s.shape)
        differ = (s > 0.5) != got
        if not bool(differ.any()):
            return s
        gap = (u - threshold).abs()
        tol = self.rtol * max(1.0, float(torch.as_tensor(
            threshold).abs().max()), float(u.abs().max()))
        tie = differ & (gap <= tol) if self.sync else torch.zeros_like(differ)
        if bool(tie.any()):
            s = torch.where(tie, got.to(s.dtype), s)
            ties.append(dict(layer=name, step=step, count=int(tie.sum()),
                             margin=float(gap[tie].max()), tolerance=tol))
        away = differ & ~tie
        if bool(away.any()):
            entry = mismatches.setdefault(name, dict(
                count=0, first_step=step, closest=float('inf')))
            entry['count'] += int(away.sum())
            entry['closest'] = min(entry['closest'], float(gap[away].min()))
        return s

    def summary(self):
        """The report's ``ties_synchronised`` entry: how many spikes were
        synchronised (``synchronised``: the larger count of the two forms,
        ``by_form``: each), and where (layer, step, margin)."""
        events = [dict(form=form, **event) for form, found in
                  self.ties.items() for event in found]
        by_form = {form: sum(e['count'] for e in found)
                   for form, found in self.ties.items()}
        # both forms usually meet the same tie: count it once
        return dict(
            synchronised=max(by_form.values(), default=0),
            rel_tolerance=self.rtol,
            by_form=by_form,
            events=events[:MAX_LISTED_TIES],
            events_not_listed=max(0, len(events) - MAX_LISTED_TIES))


def _spike_hooks(model, spikes):
    """Record the multi-step spikes of every spiking neuron (and plastic
    layer) into ``spikes`` by layer name; returns the hook handles."""
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, BaseNeuron) and getattr(module, 'mode',
                                                      'spike') == 'spike':
            handles.append(module.register_forward_hook(
                lambda m, i, out, name=name: spikes.__setitem__(name, out)))
        elif getattr(module, 'emits_spikes', False) and isinstance(
                getattr(module, 'neuron', None), BaseNeuron) and getattr(
                    module.neuron, 'mode', 'spike') == 'spike':
            # plastic layers step their neuron inside forward (no hook on
            # it fires): the layer's own output is the neuron's spikes
            handles.append(module.register_forward_hook(
                lambda m, i, out, name=f'{name}.neuron': spikes.__setitem__(
                    name, out)))
    return handles


@torch.no_grad()
def reference_run(model, x_seq, teacher=None, ties=None):
    """PyTorch's logits, spikes per neuron and per-step outputs/states
    (``teacher``: labels ``[B]`` for the layers that learn from them;
    ``ties``: a :class:`TieSync` that watches both runs)."""
    ties = ties or TieSync(model, {}, sync=False)
    spikes = {}
    handles = _spike_hooks(model, spikes)
    try:
        with _kept_local_weights(model), teaching(teacher), ties.run(
                'multi-step', loop_neurons=bool(ties.deployed)):
            logits = model(x_seq, mode='tensor')
    finally:
        for handle in handles:
            handle.remove()
    steps, state = [], None
    with teaching(teacher), ties.run('step'):
        for x_t in x_seq:
            y, state = model.step(x_t, state)
            steps.append(dict(flatten_state(state), y=y))
    return dict(logits=logits, spikes=spikes, steps=steps)


def batch_initial_states(initial, batch, shared=None):
    """Initial values saved for one sample (leading dim 1) -> ``batch``.

    ``shared``: one flag per state, True where the state has no batch axis
    (kept as it is even when its leading dim happens to be 1).
    """
    out = []
    shared = shared or [False] * len(initial)
    for value, one_for_all in zip(initial, shared):
        value = np.asarray(value)
        if not one_for_all and value.ndim >= 1 and value.shape[0] == 1:
            value = np.repeat(value, batch, axis=0)
        # np.array keeps 0-d values (ascontiguousarray would make them 1-d)
        out.append(np.array(value, order='C'))
    return out


def _maxdiff(a, b, name):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise RuntimeError(f'deployed output {name} has shape {a.shape}, '
                           f'PyTorch {b.shape}')
    return float(np.abs(a - b).max()) if a.size else 0.0


def verify(runtime, export, initial, model, x_seq, labels=None,
           dtype=np.float32, folded_states=(), sync_ties=True,
           tie_rtol=TIE_RTOL):
    """Compare ``runtime`` with ``model`` on ``x_seq`` (``[T, B, ...]``).

    ``initial``: the saved initial state values (one sample each).
    ``folded_states``: ``model.step`` states the lowering folded into
    weights (not exported, so not compared). ``labels``: the samples'
    labels; an export with a teacher input needs them (its run with
    rewards); its run without (all ``-1``) is ``without_labels``.
    ``sync_ties``: synchronise PyTorch to the deployed spikes at threshold
    ties (see the module docstring; False: compare free-running, as a
    tie then cascades); ``tie_rtol``: the tie tolerance (``TIE_RTOL``).
    Returns the verification dict written into the report.
    """
    ties = dict(sync_ties=sync_ties, tie_rtol=tie_rtol)
    if export.teacher is None:
        return _compare(runtime, export, initial, model, x_seq, labels,
                        dtype, folded_states, **ties)
    if labels is None:
        raise ConfigError(
            'the export has a teacher input (layers '
            + ', '.join(export.teacher['layers']) + ' learn from a reward '
            'at inference): verification needs the samples\' labels')
    batch = x_seq.shape[1]
    result = _compare(runtime, export, initial, model, x_seq, labels, dtype,
                      folded_states, teacher=np.asarray(labels, np.int64),
                      **ties)
    result['teacher'] = 'the labels of the samples'
    unlabelled = _compare(runtime, export, initial, model, x_seq, None,
                          dtype, folded_states,
                          teacher=np.full(batch, -1, np.int64), **ties)
    result['without_labels'] = dict(
        teacher=-1, **{key: unlabelled[key] for key in (
            'max_abs_diff', 'reference_max_abs', 'spike_agreement',
            'spike_agreement_overall', 'local_weight_change',
            'ties_synchronised', 'spike_mismatches')})
    return result


def _vacuity_warnings(spike_stats, analog, samples, steps):
    """What the spike agreement does not show: a layer that never spiked
    (or spiked at every neuron and step) agrees whatever its threshold,
    and an all-analog network has no spikes to compare."""
    warnings = []
    on = f'on the {samples} verification samples x {steps} steps'
    for name, (_, total, count) in spike_stats.items():
        layer = name[len('spikes.'):]
        if count == 0:
            warnings.append(
                f'{layer} never spiked {on}: its spike agreement proves '
                'nothing about when it fires; verify on inputs that drive '
                'it (more or other samples)')
        elif count == total:
            warnings.append(
                f'{layer} spiked at every neuron and step {on}: its spike '
                'agreement proves nothing about its threshold')
    if analog and not spike_stats:
        warnings.append('no layer outputs spikes (analog/LIAF neurons: '
                        + ', '.join(n[len('spikes.'):] for n in analog)
                        + '): no spike agreement was measured, only outputs '
                        'and states')
    return warnings


def threshold_ties(model, x_seq, rel_tol=1e-5):
    """Where PyTorch's own step run (``model.step`` over ``x_seq``) has a
    membrane within ``rel_tol * max(1, |threshold|)`` of the threshold.

    Float rounding (another order of the sums in a conv, a folded
    BatchNorm) may fire such a neuron either way, and one flipped spike
    changes the later states (a flipped hard reset moves the membrane by
    ``alpha (theta - v0)``). Read through ``neuronal_fire(u, threshold)``,
    which every neuron of the LIF family calls. Returns ``{layer:
    dict(count, first_step, closest)}`` for the layers with such a tie.
    """
    ties, patched, step = {}, [], [0]
    for name, module in model.named_modules():
        if not (isinstance(module, BaseNeuron) and
                hasattr(module, 'neuronal_fire')):
            continue

        def fire(u, threshold, module=module, name=name):
            gap = (u - threshold).abs()
            near = gap <= rel_tol * torch.clamp(
                torch.as_tensor(threshold).abs(), min=1.0)
            count = int(near.sum())
            if count:
                entry = ties.setdefault(name, dict(
                    count=0, first_step=step[0], closest=float('inf')))
                entry['count'] += count
                entry['closest'] = min(entry['closest'],
                                       float(gap[near].min()))
            return type(module).neuronal_fire(module, u, threshold)
        module.neuronal_fire = fire
        patched.append(module)
    try:
        with torch.no_grad():
            state = None
            for t, x_t in enumerate(x_seq):
                step[0] = t
                _, state = model.step(x_t, state)
    finally:
        for module in patched:
            del module.neuronal_fire
    return ties


def _local_change(first, last, names):
    """``max |L_T - L_0|`` of each local weight state in ``names``."""
    return {name: float(np.abs(np.asarray(last[name], np.float64) -
                               np.asarray(first[name], np.float64)).max())
            for name in names}


def _run_deployed(runtime, x_np, states, state_names, names, given):
    """The deployed artefact's closed loop over ``x_np``: its outputs
    (``{name: array}``) at every step, feeding its own new states back."""
    outputs = []
    for x_t in track(x_np, 'verifying deployed model', total=len(x_np)):
        outs = dict(zip(names, runtime.step(x_t, states, **given)))
        outputs.append(outs)
        states = [outs[n] for n in state_names]
    return outputs


def _spike_diffs(ties, spike_names):
    """``max |deployed - pytorch|`` of every exported spike tensor after
    the tie synchronisation: 1 where a spike differs away from a tie (in
    either form), else 0. Also the mismatches by layer (``count``: the
    larger of the two forms' counts)."""
    mismatches = {}
    for found in ties.mismatches.values():  # per form; the same spikes
        for layer, entry in found.items():
            mine = mismatches.setdefault(layer, dict(entry))
            mine['count'] = max(mine['count'], entry['count'])
            mine['first_step'] = min(mine['first_step'], entry['first_step'])
            mine['closest'] = min(mine['closest'], entry['closest'])
    diffs = {name: float(name[len('spikes.'):] in mismatches)
             for name in spike_names if name[len('spikes.'):] in
             ties.deployed}
    return diffs, mismatches


def _compare(runtime, export, initial, model, x_seq, labels, dtype,
             folded_states, teacher=None, sync_ties=True, tie_rtol=TIE_RTOL):
    """One closed-loop run of ``runtime`` and of ``model`` on ``x_seq``
    (``teacher``: the labels fed to both, or None without teacher input),
    PyTorch synchronised to the deployed spikes at threshold ties."""
    given = {} if teacher is None else dict(teacher=teacher)
    x_np = x_seq.numpy()
    if x_np.dtype.kind == 'f':  # token ids stay integers
        x_np = x_np.astype(dtype)
    shared = [n in export.shared_states for n in export.state_names]
    states = [s.astype(dtype) if s.dtype.kind == 'f' else s
              for s in batch_initial_states(initial, x_np.shape[1], shared)]
    names = export.output_names
    n_states = len(export.state_names)
    state_names = names[1:1 + n_states]
    local_names = [n for n in state_names if n.endswith('.local')]
    first_states = dict(zip(state_names, states))
    # the deployed artefact first, untouched; PyTorch then follows its
    # spikes where (and only where) they differ at a threshold tie
    deployed = _run_deployed(runtime, x_np, states, state_names, names,
                             given)
    ties = TieSync(model, {
        name[len('spikes.'):]: [outs[name] for outs in deployed]
        for name in export.spike_names}, rtol=tie_rtol, sync=sync_ties)
    ref = reference_run(model, x_seq, teacher, ties)
    expected = set(ref['steps'][0]) - {'y'} - set(folded_states)
    if export.compare_states and expected != set(export.state_names):
        raise RuntimeError(
            'exported state names differ from model.step state: '
            f'{sorted(set(export.state_names) ^ expected)}')
    diffs = {name: 0.0 for name in names if not name.startswith('spikes.')
             and (export.compare_states or name == 'y')}
    # the largest |value| PyTorch gives each compared output: float32
    # rounding is relative, and some states are far from 1 (Izhikevich's
    # membrane in mV)
    scales = {name: 0.0 for name in diffs}
    spike_stats, analog = {}, []
    for t, outs in enumerate(deployed):
        for name in diffs:
            want = ref['steps'][t][name]
            diffs[name] = max(diffs[name], _maxdiff(outs[name], want, name))
            scales[name] = max(scales[name], float(
                want.abs().max()) if want.numel() else 0.0)
        for name in export.spike_names:
            source = name[len('spikes.'):]
            if source not in ref['spikes']:
                # an analog (LIAF) neuron outputs its membrane: its spike
                # tensor is not what the next layer gets, nothing to compare
                if name not in analog:
                    analog.append(name)
                continue
            got = np.asarray(outs[name]) > 0.5
            want = ref['spikes'][source][t].numpy() > 0.5
            equal, total, count = spike_stats.get(name, (0, 0, 0))
            spike_stats[name] = (equal + int((got == want).sum()),
                                 total + got.size, count + int(want.sum()))
    y = deployed[-1]['y']
    outs = deployed[-1]
    ref_logits = ref['logits'].numpy()
    result = dict(samples=int(x_np.shape[1]), steps=int(x_np.shape[0]),
                  max_abs_diff=diffs, reference_max_abs=scales)
    # how far learning moved each local weight over the steps (0: learning
    # did nothing on these samples, whatever the other numbers say)
    if local_names:
        result['local_weight_change'] = dict(
            deployed=_local_change(first_states, outs, local_names),
            pytorch=_local_change(first_states, {
                n: ref['steps'][-1][n].numpy() for n in local_names},
                local_names))
    # the logits are held to the same relative float32 tolerance as y
    logit_scale = float(np.abs(ref_logits).max()) if ref_logits.size else 0.0
    result['max_abs_diff']['logits_after_T_steps'] = _maxdiff(
        y, ref_logits, 'logits')
    scales['logits_after_T_steps'] = logit_scale
    unrolled = runtime.unrolled(x_np, **given)
    if unrolled is not None:
        result['max_abs_diff']['unrolled_logits'] = _maxdiff(
            unrolled, ref_logits, 'unrolled logits')
        scales['unrolled_logits'] = logit_scale
    spike_diffs, mismatches = _spike_diffs(ties, export.spike_names)
    result['max_abs_diff'].update(spike_diffs)
    result['ties_synchronised'] = ties.summary()
    result['spike_mismatches'] = mismatches
    total_equal = sum(e for e, _, _ in spike_stats.values())
    total = sum(n for _, n, _ in spike_stats.values())
    result['spike_agreement'] = {
        name: dict(agreement=e / n if n else 1.0, spikes=c, neurons_x_steps=n)
        for name, (e, n, c) in spike_stats.items()}
    # None, not 1.0, when no layer's spikes were compared (all analog)
    result['spike_agreement_overall'] = total_equal / total if total else None
    result['analog_layers'] = [name[len('spikes.'):] for name in analog]
    result['warnings'] = _vacuity_warnings(spike_stats, analog,
                                           result['samples'], result['steps'])
    deployed_top1 = np.asarray(y, dtype=np.float64).argmax(1)
    torch_top1 = ref_logits.argmax(1)
    result['top1'] = dict(
        deployed=deployed_top1.tolist(), pytorch=torch_top1.tolist(),
        agreement=float((deployed_top1 == torch_top1).mean()))
    if labels is not None:
        labels = np.asarray(labels)
        result['top1']['labels'] = labels.tolist()
        result['top1']['deployed_accuracy'] = float(
            (deployed_top1 == labels).mean())
        result['top1']['pytorch_accuracy'] = float(
            (torch_top1 == labels).mean())
    return result


def measure_latency(runtime, initial, x_t, repeats=20, shared=None,
                    teacher=False):
    """Median wall time (ms) of one single-step call on one sample
    (``shared``: one flag per state, True where it has no batch axis;
    ``teacher``: the graph has a teacher input, fed a label of 0 so the
    reward update runs).

    PyTorch runs on one intra-op thread here: a batch-1 step is far too small
    to split, and on a busy machine a second thread descheduled at a barrier
    turned 0.1 ms steps into 48 ms ones.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _median_step_ms(runtime, initial, x_t, repeats, shared,
                               teacher)
    finally:
        torch.set_num_threads(threads)


def _median_step_ms(runtime, initial, x_t, repeats, shared, teacher):
    x_t = np.ascontiguousarray(x_t[:1])
    fdtype = x_t.dtype if x_t.dtype.kind == 'f' else np.float32
    states = [s.astype(fdtype) if s.dtype.kind == 'f' else s
              for s in batch_initial_states(initial, 1, shared)]
    given = dict(teacher=np.zeros(1, np.int64)) if teacher else {}
    runtime.step(x_t, states, **given)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        runtime.step(x_t, states, **given)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)
