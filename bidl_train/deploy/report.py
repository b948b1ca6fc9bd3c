"""The deploy report: ``report.json`` and its console summary.

One dict holds everything a reviewer needs to trust an artefact: which
weights (the checkpoint's absolute path, sha256 and size, or which in-memory
weights), which config, when and by which bidl-train and torch versions, which
files, which inputs and states (names and shapes), how far each output is
from PyTorch, spike agreement, top-1 of both, latency per step, what was
folded or quantised, and the chip resources.
"""
import datetime
import hashlib
import json
import os
import os.path as osp

__all__ = ['write_report', 'format_summary', 'checkpoint_source',
           'memory_source', 'provenance', 'file_sha256']


def file_sha256(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def _abspath(path):
    return None if path is None else osp.abspath(osp.expanduser(str(path)))


def checkpoint_source(checkpoint, config=None, note=None):
    """The report's ``source`` for weights read from the file ``checkpoint``:
    its absolute path, sha256 and size, and the config's absolute path."""
    path = _abspath(checkpoint)
    source = dict(weights='checkpoint', checkpoint=dict(
        path=path, sha256=file_sha256(path), size_bytes=os.path.getsize(path)),
        config=_abspath(config))
    if note:
        source['note'] = note
    return source


def memory_source(description, config=None):
    """The report's ``source`` for weights that no checkpoint file holds,
    ``description`` saying which (``'in-memory weights at epoch 3'``)."""
    return dict(weights='in-memory', checkpoint=None, config=_abspath(config),
                note=description)


def provenance(source=None):
    """The report's ``source``, ``created`` (UTC, ISO 8601) and
    ``versions`` entries."""
    import torch

    import bidl_train
    if source is None:
        source = memory_source('in-memory model handed to deploy(); the '
                               'caller named no checkpoint')
    created = datetime.datetime.now(datetime.timezone.utc)
    return dict(source=source,
                created=created.isoformat(timespec='seconds'),
                versions=dict(bidl_train=bidl_train.__version__,
                              torch=torch.__version__))


def write_report(report, out_dir):
    path = osp.join(out_dir, 'report.json')
    with open(path, 'w') as f:
        json.dump(report, f, indent=2)
    return path


def _fmt(value):
    return f'{value:.3g}' if isinstance(value, float) else str(value)


def _learning_lines(ver):
    """The local weight change of learning layers, and the run without
    labels of an export with a teacher input."""
    lines = []
    change = ver.get('local_weight_change')
    if change:
        label = (' (teacher: labels)' if 'teacher' in ver else '')
        for name, value in change['deployed'].items():
            lines.append(f'    local weight change{label} {name}: '
                         f"max |L_T - L_0| deployed {_fmt(value)}, pytorch "
                         f"{_fmt(change['pytorch'][name])}")
    plain = ver.get('without_labels')
    if plain:
        worst = max(plain['max_abs_diff'].values(), default=0.0)
        lines.append('    without labels (teacher -1): max |deployed - '
                     f'pytorch| {_fmt(worst)}, spike agreement '
                     f"{_agreement(plain['spike_agreement_overall'])}")
        change = plain['local_weight_change']
        for name, value in change['deployed'].items():
            lines.append(f'    local weight change (teacher -1) {name}: '
                         f'deployed {_fmt(value)}, pytorch '
                         f"{_fmt(change['pytorch'][name])}")
    return lines


def _agreement(value):
    return 'not measured' if value is None else f'{value:.6f}'


def _spike_lines(ver):
    """Spike agreement, only over the layers whose output is spikes."""
    overall = ver['spike_agreement_overall']
    analog = ver.get('analog_layers') or []
    if overall is None:
        return ['    spike agreement: not measured (no layer outputs spikes'
                + (': ' + ', '.join(analog) + ' are analog' if analog else '')
                + ')']
    line = f'    spike agreement: {overall:.6f}'
    if analog:
        line += ' (analog layers not compared: ' + ', '.join(analog) + ')'
    return [line]


def _tie_lines(ver):
    """How many spikes sat on a threshold tie and were synchronised, and
    where (layer, step, margin |u - theta|)."""
    ties = ver.get('ties_synchronised')
    if not ties:
        return []
    if not ties['synchronised']:
        return ['    threshold ties synchronised: 0']
    where = {}
    for event in ties['events']:  # both forms meet the same tie: once
        key = (event['layer'], event['step'])
        count, margin = where.get(key, (0, 0.0))
        where[key] = (max(count, event['count']),
                      max(margin, event['margin']))
    listed = ', '.join(f'{layer} step {step} ({count}x, margin '
                       f'{_fmt(margin)})' for (layer, step), (count, margin)
                       in where.items())
    if ties['events_not_listed']:
        listed += f" and {ties['events_not_listed']} more"
    return [f"    threshold ties synchronised: {ties['synchronised']} "
            f"spike(s) where PyTorch's membrane lay within "
            f"{_fmt(ties['rel_tolerance'])} x max(1, |theta|, |u|) of the "
            f'threshold took the deployed spike: {listed}']


def _failure_line(failure, ver):
    """``FAILED <check>: <value> (limit <limit>)``, and for a spike check
    how many spikes differ away from a threshold tie."""
    line = (f"  FAILED {failure['check']}: {_fmt(failure['value'])} (limit "
            f"{_fmt(failure['limit'])})")
    check = failure['check']
    run = ver.get('without_labels', {}) if check.startswith(
        'without labels: ') else ver
    if 'spikes.' in check:
        layer = check[check.index('spikes.') + len('spikes.'):]
        found = run.get('spike_mismatches', {}).get(layer)
        if found:
            line += (f": {found['count']} spike(s) differ away from a "
                     f"threshold tie, first at step {found['first_step']}, "
                     f"closest |u - theta| {_fmt(found['closest'])}")
    return line


def _check_lines(ver):
    """Which check failed and by how much, the warnings about what the
    verification could not show, and the threshold ties that explain a
    flipped spike."""
    lines = [_failure_line(f, ver) for f in ver.get('failed_checks', [])]
    lines += [f'  WARNING: {text}' for text in ver.get('warnings', [])]
    ties = ver.get('threshold_ties')
    if ties:
        where = ', '.join(
            f"{layer} {tie['count']}x from step {tie['first_step']} "
            f"(closest {_fmt(tie['closest'])})" for layer, tie in
            ties.items())
        lines.append(
            '  diagnosis: PyTorch\'s own membrane lies within float rounding'
            f' of the threshold (a tie) in {where}; rounding may fire such a'
            ' neuron either way, and one flipped spike changes every later '
            'state (a hard reset by alpha (theta - v0)), so the mismatch may'
            ' be a tie, not a fault of the graph')
    elif ties is not None:
        lines.append('  diagnosis: no membrane of PyTorch\'s run lies within '
                     'float rounding of a threshold: the mismatch is not a '
                     'tie')
    return lines


def _source_lines(report):
    """Which weights and config the artefacts come from, and what a killed
    earlier deploy left that this one cleaned up."""
    lines = []
    source = report.get('source')
    if source:
        ckpt = source.get('checkpoint')
        if ckpt:
            lines.append(f"  checkpoint: {ckpt['path']} (sha256 "
                         f"{ckpt['sha256']}, {ckpt['size_bytes']} bytes)")
        if source.get('note'):
            lines.append(f"  weights: {source['note']}")
        if source.get('config'):
            lines.append(f"  config: {source['config']}")
    lines += [f'  cleaned up: {line}' for line in report.get('recovered', [])]
    return lines


def format_summary(report):
    """A readable multi-line summary of ``report``."""
    lines = [f"bidl-deploy: target {report['target']} "
             f"({report['precision']}), {report['status']}"]
    lines += _source_lines(report)
    lines.append('  files:')
    lines += [f'    {role}: {path}' for role, path in report['files'].items()]
    lines.append('  step inputs: ' + ', '.join(
        f"{s['name']}{s['shape']}" for s in report['inputs']))
    teacher = report.get('teacher')
    if teacher:
        lines.append(
            f"  teacher input: {teacher['name']} ({teacher['dtype']}, "
            "[batch]; -1 = no label, no reward) after x / x_seq, read by "
            + ', '.join(f'{layer} ({rule})' for layer, rule in
                        teacher['layers'].items()))
    for note in report['folded']:
        lines.append(f'  folded: {note}')
    for note in report['notes']:
        lines.append(f'  note: {note}')
    ver = report.get('verification')
    if ver:
        lines.append(f"  verified on {ver['samples']} samples x "
                     f"{ver['steps']} steps:")
        for name, diff in ver['max_abs_diff'].items():
            if name.startswith('spikes.') and not diff:
                continue  # equal spikes: said by the agreement line
            lines.append(f'    max |deployed - pytorch| {name}: '
                         f'{_fmt(diff)}')
        lines += _spike_lines(ver)
        lines += _tie_lines(ver)
        top1 = ver['top1']
        line = f"    top-1 agreement: {top1['agreement']:.3f}"
        if 'deployed_accuracy' in top1:
            line += (f"; accuracy deployed {top1['deployed_accuracy']:.3f} "
                     f"vs pytorch {top1['pytorch_accuracy']:.3f}")
        lines.append(line)
        lines += _learning_lines(ver)
        lines += _check_lines(ver)
    acc = report.get('accuracy')
    if acc:
        lines.append(f"  top-1 on {acc['samples']} {acc['split']} samples: "
                     f"deployed ({report['precision']}) "
                     f"{acc['deployed_top1']:.4f} vs pytorch (fp32) "
                     f"{acc['pytorch_top1']:.4f}, change "
                     f"{acc['change']:+.4f}")
    if report.get('latency_ms_per_step') is not None:
        lines.append('  latency per time step (batch 1): '
                     f"{report['latency_ms_per_step']:.3f} ms")
    res = report.get('resources')
    if res:
        lines.append(f"  resources: {res['neurons']} neurons, "
                     f"{res['synapses']} synapses, {res['weights']} weights "
                     f"({res['weight_bytes']} B), state "
                     f"{res['state_bytes']} B per sample")
        for layer in res['layers']:
            if 'fan_in' in layer:
                lines.append(f"    {layer['layer']}: fan-in "
                             f"{layer['fan_in']}, {layer['synapses']} "
                             'synapses')
            else:
                lines.append(f"    {layer['layer']}: {layer['neurons']} "
                             'neurons')
    return '\n'.join(lines)
