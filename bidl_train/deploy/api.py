"""``deploy()``: lower, check, convert, export, verify, report.

The order matters: every refusal (unknown layer, a feature the target
cannot express, an unsupported precision) happens before a file is
written, and every written artefact is re-opened in the target's own
runtime and compared with the PyTorch model before the report says
"verified".
"""
import os.path as osp
import tempfile

import numpy as np
import torch

from bidl_train.errors import ConfigError
from bidl_train.registry import DEPLOY_TARGETS
from .artefacts import read_initial_state
from .blockers import Blocker, collecting, refusals
from .lower import lower_model
from .precision import input_dtype, prepare
from .outdir import staged_output
from .report import provenance, write_report
from .resources import resource_summary
from .verify import measure_latency, threshold_ties, verify

__all__ = ['deploy', 'get_target', 'list_targets', 'failed_checks',
           'find_blockers']

#: fp32 tolerance: deployed logits may differ from PyTorch by float
#: rounding only (BatchNorm folding reorders sums), spikes must agree. A
#: state far from 1 (Izhikevich's membrane in mV) is held to the same
#: tolerance relative to its largest value: float rounding is relative.
FP32_LOGIT_ATOL = 1e-4
FP32_SPIKE_AGREEMENT = 0.999


def list_targets():
    """``[(name, description)]`` of the registered targets."""
    import bidl_train.deploy  # noqa: F401  (registers the targets)
    return [(name, getattr(cls, 'description', ''))
            for name, cls in DEPLOY_TARGETS.module_dict.items()]


def get_target(name):
    names = [n for n, _ in list_targets()]
    if name not in names:
        raise ConfigError(f'unknown deploy target {name!r}; registered '
                          f'targets: {", ".join(names)}')
    return DEPLOY_TARGETS.get(name)()


def _status(precision, ver):
    if ver is None:
        return 'exported (not verified)'
    if precision != 'fp32':
        return 'exported; reduced-precision change measured'
    return 'MISMATCH' if failed_checks(ver) else 'verified'


def failed_checks(ver):
    """Every fp32 check the verification ``ver`` failed, as ``dict(check,
    value, limit)`` (empty: verified). An export with a teacher input was
    run with and without labels; the second run's checks say so."""
    runs = [('', ver)] + ([('without labels: ', ver['without_labels'])]
                          if 'without_labels' in ver else [])
    return [failure for prefix, run in runs for failure in
            _run_failures(run, prefix)]


def _run_failures(run, prefix):
    failures = []
    scale = run.get('reference_max_abs', {})
    for name, diff in run['max_abs_diff'].items():
        limit = FP32_LOGIT_ATOL * max(1.0, scale.get(name, 1.0))
        if not diff <= limit:  # NaN fails too
            failures.append(dict(check=f'{prefix}max |deployed - pytorch| '
                                 f'{name}', value=diff, limit=limit))
    agreement = run['spike_agreement_overall']
    if agreement is not None and not agreement >= FP32_SPIKE_AGREEMENT:
        failures.append(dict(check=f'{prefix}spike agreement',
                             value=agreement, limit=FP32_SPIKE_AGREEMENT))
    return failures


def _accuracy(ver, split):
    """Deployed vs PyTorch top-1 on the labelled verification samples.

    This is the number a reduced-precision export is judged by: the same
    samples through the deployed artefact and through the fp32 PyTorch
    model, so ``change`` is the accuracy the precision costs on them.
    """
    top1 = ver['top1']
    return dict(split=split, samples=ver['samples'],
                pytorch_top1=top1['pytorch_accuracy'],
                deployed_top1=top1['deployed_accuracy'],
                change=top1['deployed_accuracy'] - top1['pytorch_accuracy'],
                prediction_agreement=top1['agreement'])


def _input_shapes(export, x_dep, initial):
    """Name and shape (batch 1) of each step input, in graph order."""
    lead = [x_dep[0, :1]]
    if export.teacher is not None:
        lead.append(np.zeros(1, np.int64))
    return [dict(name=n, shape=list(v.shape)) for n, v in zip(
        export.input_names, lead + initial)]


def deploy(model, target, x_seq, out_dir, labels=None, precision='fp32',
           verify_samples=True, split=None, source=None, inputs=None):
    """Export ``model`` for ``target`` and verify it on ``x_seq``.

    Args:
        model: a ``SpikingClassifier`` with trained weights.
        target (str): a registered target name.
        x_seq (Tensor): ``[T, B, ...]`` verification inputs (``B >= 1``);
            the first sample is also the tracing example. Integer inputs
            (token ids ``[T, B]`` of FastTextLif) are kept as integers.
        out_dir (str): where the artefacts and ``report.json`` go.
        labels: optional ``B`` labels, for accuracy in the report. A model
            with a layer learning from a reward at inference (the export
            gets a ``teacher`` input) needs them to be verified: they are
            the teacher of the verification run with rewards.
        precision (str): ``fp32``, ``fp16`` or ``int8``.
        verify_samples (bool): run the verification (else export only).
        split (str): where ``x_seq``/``labels`` come from (``'val'``), named
            in the report's accuracy section.
        source (dict): where the weights come from, for the report's
            ``source`` section: :func:`~bidl_train.deploy.report.
            checkpoint_source` or :func:`~bidl_train.deploy.report.
            memory_source` (default: in-memory weights of no named file).
        inputs (dict): what ``x_seq`` is, for the report's
            ``verification_inputs`` (see :func:`~bidl_train.deploy.samples.
            verification_samples`); random inputs also get a note.

    Returns:
        dict: the report (also written to ``out_dir/report.json``).

    ``out_dir`` is replaced as a whole, never updated file by file: the
    artefacts and report are written to a temporary sibling folder that is
    renamed onto ``out_dir`` only once the report is written (see
    :mod:`~bidl_train.deploy.outdir`). An exception leaves a previous
    ``out_dir`` untouched. A verification that finds a MISMATCH is a
    finished deploy: its artefacts go in place with a report that says
    ``MISMATCH``, so the disagreement can be inspected.
    """
    tgt = get_target(target)
    tgt.check_precision(precision)
    model = model.eval()
    if x_seq.dim() < (2 if not x_seq.is_floating_point() else 3):
        raise ConfigError(f'verification inputs must be [T, B, ...], got '
                          f'shape {tuple(x_seq.shape)}')
    # token ids (FastTextLif) stay integers; everything else is float
    x_ref = x_seq if not x_seq.is_floating_point() else x_seq.float()
    x_dep = (x_ref if not x_ref.is_floating_point() else
             x_ref.to(input_dtype(precision)))
    lowered = lower_model(model, x_ref[0, :1])
    tgt.check(lowered)
    if lowered.teacher_layers and verify_samples and labels is None:
        raise ConfigError(
            'layers ' + ', '.join(lowered.teacher_layers) + ' learn from a '
            'reward at inference (the export gets a teacher input): give '
            'labels= for the verification samples (their teacher), or '
            'verify_samples=False')
    step_net, notes = prepare(lowered, precision)
    with staged_output(out_dir) as (staging, recovered):
        report = _export_and_verify(
            tgt, model, lowered, step_net, x_ref, x_dep, labels, precision,
            verify_samples, split, staging)
        # what, from which weights, when and by what go first
        head = {key: report.pop(key)
                for key in ('target', 'precision', 'status')}
        report = dict(head, **provenance(source), **report,
                      recovered=recovered)
        report['notes'] = notes + _inputs_notes(inputs) + report['notes']
        if inputs is not None:
            report['verification_inputs'] = inputs
        write_report(report, staging)
    return report


def _inputs_notes(inputs):
    """A note saying the verification ran on random inputs, not data."""
    if not inputs or inputs.get('kind') != 'random':
        return []
    what = ('token ids' if inputs.get('density') is None else
            f"binary frames ({inputs['density']:g} ones)")
    return [f"verification inputs: {inputs['samples']} random {what} of "
            f"shape {inputs['shape']} (seed {inputs['seed']}), not data: "
            f"{inputs['reason']}; they show agreement with PyTorch, not "
            'accuracy']


def find_blockers(model, target, x_seq, precision='fp32', try_export=True):
    """Every reason ``model`` cannot be deployed to ``target``, at once.

    Lowers ``model`` and runs the target's check in collecting mode
    (:mod:`.blockers`): each layer the lowering or the target refuses is
    one :class:`~.blockers.Blocker`, and the walk goes on past it. When
    none is found and ``try_export``, the model is also exported (into a
    temporary folder, then deleted) on ``x_seq`` (``[T, B, ...]``), since
    a few refusals only show when the graph is built; an export failure is
    one more blocker.

    Returns:
        list[Blocker]: empty when the model deploys.
    """
    tgt = get_target(target)
    tgt.check_precision(precision)
    model = model.eval()
    with collecting() as blockers:
        with refusals('model'):
            lowered = lower_model(model, x_seq[0, :1])
            tgt.check(lowered)
    if blockers or not try_export:
        return blockers
    try:
        step_net, _ = prepare(lowered, precision)
        x_dep = x_seq if not x_seq.is_floating_point() else \
            x_seq.float().to(input_dtype(precision))
        with tempfile.TemporaryDirectory(prefix='bidl_check_') as tmp:
            tgt.export(step_net, x_dep, tmp)
    except Exception as err:  # noqa: BLE001 (any failure blocks the export)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        layer = getattr(err, 'layer', None) or 'export'
        feature = getattr(err, 'feature', None) or \
            f'the {target} export fails: {first}'
        blockers.append(Blocker(layer, feature, first))
    return blockers


def _export_and_verify(tgt, model, lowered, step_net, x_ref, x_dep, labels,
                       precision, verify_samples, split, out_dir):
    """Export into ``out_dir`` (the staging folder), verify, and build the
    report (not written yet)."""
    export = tgt.export(step_net, x_dep, out_dir)
    notes = list(export.notes)
    initial = read_initial_state(export.files['initial_state'],
                                 export.state_names)
    ver = latency = None
    if verify_samples:
        runtime = tgt.load(export)
        np_dtype = np.float16 if precision == 'fp16' else np.float32
        ver = verify(runtime, export, initial, model, x_ref, labels,
                     np_dtype, folded_states=lowered.folded_states)
        latency = measure_latency(
            runtime, initial, x_dep[0].numpy(), shared=[
                n in export.shared_states for n in export.state_names],
            teacher=export.teacher is not None)
        ver['failed_checks'] = failed_checks(ver) \
            if precision == 'fp32' else []
        if ver['failed_checks']:
            # a tie at the threshold explains a flipped spike (and every
            # later state) without any fault in the graph: say where
            ver['threshold_ties'] = threshold_ties(model, x_ref)
        if 'deployed_accuracy' in ver['top1']:
            ver['accuracy_change'] = (ver['top1']['deployed_accuracy'] -
                                      ver['top1']['pytorch_accuracy'])
    accuracy = (_accuracy(ver, split or 'given samples')
                if ver is not None and labels is not None else None)
    with torch.no_grad():
        resources = resource_summary(lowered, x_ref[0], precision)
    report = dict(
        target=tgt.name, precision=precision,
        status=_status(precision, ver),
        files={role: osp.relpath(path, out_dir)
               for role, path in export.files.items()},
        inputs=_input_shapes(export, x_dep, initial), teacher=export.teacher,
        state_names=export.state_names, spike_names=export.spike_names,
        time_steps=int(x_ref.shape[0]), folded=lowered.folded, notes=notes,
        verification=ver, accuracy=accuracy, latency_ms_per_step=latency,
        resources=resources, **export.report)  # target-specific entries
    report['files']['report'] = 'report.json'
    return report
