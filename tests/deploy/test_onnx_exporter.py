"""Which torch ONNX exporter writes the graphs, and what the report says.

The default path is ``torch.onnx.export(..., dynamo=True)``; a graph the
new exporter cannot express falls back to the deprecated TorchScript-based
exporter with the reason in the report. Names and opset are checked against
lists written here (what users' runtimes depend on), never read back from
the exporter's own output.
"""
import json
import warnings

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope

onnx = pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')

from bidl_train.deploy import deploy  # noqa: E402
from bidl_train.deploy import onnx_export  # noqa: E402
from bidl_train.deploy.onnx import ScanUnrolled  # noqa: E402
from bidl_train.deploy.torchscript import jit_quietly  # noqa: E402
from bidl_train.registry import MODELS  # noqa: E402

init_default_scope('bidl_train')

STEP_INPUTS = ['x', 'backbone.0.v', 'backbone.2.v', 'head.sum', 'head.count']
STEP_OUTPUTS = ['y', 'backbone.0.v.next', 'backbone.2.v.next',
                'head.sum.next', 'head.count.next',
                'spikes.backbone.layers.0.neuron',
                'spikes.backbone.layers.2.neuron']


def _classifier():
    torch.manual_seed(3)
    model = MODELS.build(dict(
        type='SpikingClassifier',
        backbone=dict(type='ConvLifNet', in_channels=2, input_size=8,
                      channels=[4], pools=[2], fc=[16], norm=True,
                      neuron=dict(type='LIF')),
        head=dict(type='SpikingClsHead', in_features=16, num_classes=3)))
    return model.eval()


def _inputs(T=5, B=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, 2, 8, 8, generator=gen) > 0.6).float()


def _graph(path):
    return onnx.load(str(path))


def _opset(model):
    return {o.domain or 'ai.onnx': o.version for o in model.opset_import}


def _dims(value):
    return [d.dim_param or d.dim_value
            for d in value.type.tensor_type.shape.dim]


@pytest.fixture(autouse=True)
def _default_exporter(monkeypatch):
    """These tests hold the default path: the suite's conftest asks for the
    TorchScript-based exporter everywhere else (it is much faster)."""
    monkeypatch.delenv('BIDL_TRAIN_ONNX_EXPORTER', raising=False)


@pytest.fixture
def export_calls(monkeypatch):
    """Every ``torch.onnx.export`` call's ``dynamo`` argument."""
    calls, real = [], torch.onnx.export

    def spy(*args, **kwargs):
        calls.append(kwargs.get('dynamo'))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, 'export', spy)
    return calls


def test_default_path_is_the_dynamo_exporter(tmp_path, export_calls):
    model, x = _classifier(), _inputs()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        report = deploy(model, 'onnx', x, str(tmp_path), labels=[0, 1, 2])
    assert report['status'] == 'verified'
    assert export_calls == [True, True]  # step and unrolled, no legacy
    assert report['exporter'] == dict(
        used='dynamo', opset=17, graphs={'step.onnx': dict(used='dynamo'),
                                         'unrolled.onnx': dict(used='dynamo')})
    assert json.loads((tmp_path / 'report.json').read_text())['exporter'] \
        == report['exporter']
    assert any('dynamo=True' in note for note in report['notes'])
    # no deprecation notice from the TorchScript-based exporter or torch.jit
    noisy = [str(w.message) for w in caught
             if 'TorchScript' in str(w.message) or 'torch.jit' in
             str(w.message) or issubclass(w.category, DeprecationWarning)]
    assert noisy == []

    # opset and names as before: users' runtimes feed them by name
    step, unrolled = (_graph(tmp_path / 'step.onnx'),
                      _graph(tmp_path / 'unrolled.onnx'))
    assert _opset(step)['ai.onnx'] == 17 and _opset(unrolled)['ai.onnx'] == 17
    assert [i.name for i in step.graph.input] == STEP_INPUTS
    assert [o.name for o in step.graph.output] == STEP_OUTPUTS
    assert _dims(step.graph.input[0]) == ['batch', 2, 8, 8]
    assert _dims(step.graph.input[4]) == []  # the step count: a scalar
    assert [i.name for i in unrolled.graph.input] == ['x_seq']
    assert [o.name for o in unrolled.graph.output] == ['logits']
    assert _dims(unrolled.graph.input[0]) == ['T', 'batch', 2, 8, 8]
    assert 'Scan' in [n.op_type for n in unrolled.graph.node]
    # one self-contained file each (no external weights beside them)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'initial_state.npz', 'manifest.json', 'report.json', 'step.onnx',
        'unrolled.onnx']

    # T and batch are free in the scan: other T and B than exported
    import onnxruntime as ort
    session = ort.InferenceSession(str(tmp_path / 'unrolled.onnx'))
    for T, B in [(1, 1), (9, 2)]:
        xs = _inputs(T, B, seed=T)
        with torch.no_grad():
            want = model(xs, mode='tensor').numpy()
        got = session.run(None, {'x_seq': xs.numpy()})[0]
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_unexpressible_unrolled_graph_falls_back_with_reason(
        tmp_path, monkeypatch, export_calls):
    """``torch.export`` refusing the scan (as it would a construct it cannot
    capture) writes unrolled.onnx with the TorchScript-based exporter; the
    step graph stays on the dynamo exporter."""
    real = torch.export.export

    def refuse_scan(module, *args, **kwargs):
        if isinstance(module, ScanUnrolled):
            raise RuntimeError('scan over a dynamic axis is not supported')
        return real(module, *args, **kwargs)

    monkeypatch.setattr(torch.export, 'export', refuse_scan)
    model, x = _classifier(), _inputs()
    report = deploy(model, 'onnx', x, str(tmp_path), labels=[0, 1, 2])
    assert report['status'] == 'verified'
    assert export_calls == [True, True, False]
    exporter = report['exporter']
    assert exporter['used'] == 'mixed'
    assert exporter['graphs']['step.onnx'] == dict(used='dynamo')
    fallback = exporter['graphs']['unrolled.onnx']
    assert fallback['used'] == 'torchscript'
    assert fallback['fallback_reason'] == (
        'RuntimeError: scan over a dynamic axis is not supported')
    assert exporter['fallback_reason'].startswith('unrolled.onnx: Runtime')
    assert 'deprecated' in exporter['deprecated']
    note = next(n for n in report['notes'] if 'fell back' in n)
    assert 'scan over a dynamic axis' in note
    # the legacy unrolled graph is still dynamic in T (an ONNX Loop) and
    # keeps its names and opset
    unrolled = _graph(tmp_path / 'unrolled.onnx')
    assert 'Loop' in [n.op_type for n in unrolled.graph.node]
    assert _opset(unrolled)['ai.onnx'] == 17
    assert [i.name for i in unrolled.graph.input] == ['x_seq']
    assert [o.name for o in unrolled.graph.output] == ['logits']
    manifest = json.loads((tmp_path / 'manifest.json').read_text())
    assert manifest['exporter'] == exporter
    assert manifest['unrolled_time_steps'] == 'dynamic'


def _fp16_reference(model, xs):
    """The fp16 network in PyTorch (what ONNX Runtime must reproduce)."""
    from bidl_train.deploy.lower import lower_model
    from bidl_train.deploy.nets import UnrolledNet
    from bidl_train.deploy.precision import prepare
    net, _ = prepare(lower_model(model, xs[0, :1]), 'fp16')
    with torch.no_grad():
        return UnrolledNet(net)(xs.half()).float().numpy()


def test_fp16_unrolled_graph_has_dynamic_T(tmp_path):
    """The dynamo exporter's Scan keeps T dynamic at fp16 too (the
    TorchScript exporter's Loop cannot, see the next test)."""
    import onnxruntime as ort
    model, x = _classifier(), _inputs(T=4, B=2)
    report = deploy(model, 'onnx', x, str(tmp_path), labels=[0, 1],
                    precision='fp16')
    assert report['exporter']['graphs']['unrolled.onnx'] == dict(
        used='dynamo')
    assert 'notes' not in report['exporter']  # nothing fixed
    manifest = json.loads((tmp_path / 'manifest.json').read_text())
    assert manifest['unrolled_time_steps'] == 'dynamic'
    unrolled = _graph(tmp_path / 'unrolled.onnx')
    assert _dims(unrolled.graph.input[0]) == ['T', 'batch', 2, 8, 8]
    assert unrolled.graph.input[0].type.tensor_type.elem_type == \
        onnx.TensorProto.FLOAT16
    session = ort.InferenceSession(str(tmp_path / 'unrolled.onnx'))
    for T, B in [(2, 3), (7, 2)]:  # neither is the exported T=4
        xs = _inputs(T, B, seed=T)
        got = session.run(None, {'x_seq': xs.half().numpy()})[0]
        assert got.dtype == np.float16 and got.shape == (B, 3)
        np.testing.assert_allclose(got.astype(np.float32),
                                   _fp16_reference(model, xs), atol=2e-3)


def test_fp16_fallback_fixes_T_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv('BIDL_TRAIN_ONNX_EXPORTER', 'torchscript')
    report = deploy(_classifier(), 'onnx', _inputs(T=4, B=2),
                    str(tmp_path), labels=[0, 1], precision='fp16')
    manifest = json.loads((tmp_path / 'manifest.json').read_text())
    assert manifest['unrolled_time_steps'] == 4
    notes = report['exporter']['notes']
    assert len(notes) == 1 and notes[0].startswith(
        'unrolled.onnx: T fixed at 4: fp16 export by the TorchScript')
    unrolled = _graph(tmp_path / 'unrolled.onnx')
    assert _dims(unrolled.graph.input[0]) == [4, 'batch', 2, 8, 8]


class _Affine(torch.nn.Module):
    def forward(self, x):
        return x * 2.0 + 1.0


def _export_affine(path):
    x = torch.ones(1, 3)
    return onnx_export.export_graph(
        str(path), ['x'], ['y'], dynamo=(_Affine(), (x, ), ({0: 'batch'}, )),
        torchscript=lambda: (_Affine(), (x, ), {'x': {0: 'batch'}}))


def _run_affine(path):
    import onnxruntime as ort
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    got = ort.InferenceSession(str(path)).run(None, {'x': x})[0]
    np.testing.assert_allclose(got, x * 2 + 1)


def test_missing_onnxscript_falls_back_with_reason(tmp_path, monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: (
        None if name == 'onnxscript' else real(name, *a)))
    info = _export_affine(tmp_path / 'a.onnx')
    assert info['used'] == 'torchscript'
    assert 'onnxscript package is not installed' in info['fallback_reason']
    _run_affine(tmp_path / 'a.onnx')


def test_unforeseen_exporter_failure_falls_back(tmp_path, monkeypatch):
    """An error torch does not wrap as an exporter error still means the
    new exporter wrote nothing: fall back, naming the error."""
    real = torch.onnx.export

    def broken(*args, dynamo=True, **kwargs):
        if dynamo:
            raise AssertionError('exported_program must be non-None')
        return real(*args, dynamo=dynamo, **kwargs)

    monkeypatch.setattr(torch.onnx, 'export', broken)
    info = _export_affine(tmp_path / 'a.onnx')
    assert info == dict(used='torchscript', fallback_reason=(
        'AssertionError: exported_program must be non-None'))
    _run_affine(tmp_path / 'a.onnx')


def test_graph_left_at_another_opset_falls_back(tmp_path, monkeypatch):
    """The dynamo exporter writes opset 18 and converts down; where that
    conversion fails it keeps opset 18, which runtimes pinned to 17 cannot
    load: such a graph is written by the TorchScript-based exporter."""
    import onnx.version_converter

    def fail(*args, **kwargs):
        raise RuntimeError('no adapter')

    monkeypatch.setattr(onnx.version_converter, 'convert_version', fail)
    info = _export_affine(tmp_path / 'a.onnx')
    assert info == dict(used='torchscript', fallback_reason=(
        'it wrote ONNX opset 18, not 17 (its conversion down to opset 17 '
        'failed)'))
    assert _opset(_graph(tmp_path / 'a.onnx'))['ai.onnx'] == 17
    _run_affine(tmp_path / 'a.onnx')


class _GroupMean(torch.nn.Module):
    """A mean over groups, as the population head's GroupMeanNode: its
    ``ReduceMean`` takes the axes as an input in opset 18 and as an
    attribute in opset 17."""

    def forward(self, x):
        return x.reshape(-1, 2, 3).mean(-1)


def test_reduction_is_converted_down_to_opset_17_by_the_dynamo_exporter(
        tmp_path):
    """Unoptimised, the exporter computes a reduction's axes (a Reshape of
    constants) and ONNX's converter cannot turn them into the opset-17
    attribute: the graph used to fall back to the TorchScript exporter."""
    x = torch.ones(1, 6)
    path = tmp_path / 'mean.onnx'
    info = onnx_export.export_graph(
        str(path), ['x'], ['y'], dynamo=(_GroupMean(), (x, ), (
            {0: 'batch'}, )), torchscript=lambda: (_GroupMean(), (x, ), {
                'x': {0: 'batch'}}))
    assert info == dict(used='dynamo')
    graph = _graph(path)
    assert _opset(graph)['ai.onnx'] == 17
    onnx.checker.check_model(graph)
    mean = next(n for n in graph.graph.node if n.op_type == 'ReduceMean')
    assert [a.name for a in mean.attribute if a.name == 'axes'] == ['axes']
    assert len(mean.input) == 1  # opset 17: the axes are no input
    import onnxruntime as ort
    data = np.arange(18, dtype=np.float32).reshape(3, 6)
    got = ort.InferenceSession(str(path)).run(None, {'x': data})[0]
    # groups of three consecutive values: their middle one is the mean
    np.testing.assert_allclose(got, data[:, 1::3])


def test_torchscript_target_says_deprecated_without_warning_noise(tmp_path):
    model, x = _classifier(), _inputs(T=3, B=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        report = deploy(model, 'torchscript', x, str(tmp_path))
    assert report['status'] == 'verified'
    assert [str(w.message) for w in caught
            if 'torch.jit' in str(w.message)] == []
    assert any('TorchScript (torch.jit) is deprecated' in note and
               '--target onnx' in note for note in report['notes'])


def test_jit_quietly_silences_only_torch_jit_deprecations():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        with jit_quietly():
            warnings.warn('`torch.jit.script` is deprecated.',
                          DeprecationWarning)
            warnings.warn('`numpy.foo` is deprecated.', DeprecationWarning)
            warnings.warn('`torch.jit.x` changed', UserWarning)
    assert [str(w.message) for w in caught] == [
        '`numpy.foo` is deprecated.', '`torch.jit.x` changed']


def test_environment_asks_for_the_torchscript_exporter(tmp_path,
                                                       monkeypatch,
                                                       export_calls):
    monkeypatch.setenv('BIDL_TRAIN_ONNX_EXPORTER', 'torchscript')
    report = deploy(_classifier(), 'onnx', _inputs(), str(tmp_path / 'o'))
    assert report['exporter']['used'] == 'torchscript'
    assert 'BIDL_TRAIN_ONNX_EXPORTER=torchscript' in \
        report['exporter']['fallback_reason']
    assert export_calls and not any(export_calls)  # never dynamo=True


def test_unknown_exporter_choice_is_one_line(tmp_path, monkeypatch):
    from bidl_train.errors import ConfigError
    monkeypatch.setenv('BIDL_TRAIN_ONNX_EXPORTER', 'fast')
    with pytest.raises(ConfigError, match='BIDL_TRAIN_ONNX_EXPORTER'):
        deploy(_classifier(), 'onnx', _inputs(), str(tmp_path / 'o'))
