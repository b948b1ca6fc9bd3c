"""ONNX target: the state-aware step graph and the unrolled T-step graph.

Exported with the exporter torch recommends, ``torch.onnx.export(...,
dynamo=True)`` (``torch.export``; needs ``onnxscript``), at opset
:data:`~.onnx_export.OPSET`. A graph it cannot express is written by the
deprecated TorchScript-based exporter instead, and the report's
``exporter`` entry says which exporter wrote each graph and why (see
:mod:`.onnx_export`). Graph inputs are named ``x`` and the state names
(``backbone.0.v``, ``head.sum`` ...), outputs ``y``, the new states
(``<name>.next``) and the spikes (``spikes.<layer>``). The batch axis of
every non-scalar input and output is dynamic. ``unrolled.onnx`` runs all
steps from a fresh state: a ``torch.scan`` over ``x_seq``'s axis 0 that
becomes an ONNX ``Scan`` (after a fallback: the scripted time loop of
:func:`~.nets.script_unrolled`, an ONNX ``Loop``), so ``T`` is dynamic too
(fp16 included; except with a learning persistent plastic conv layer,
whose kernel is state, and at fp16 after a fallback: there the T-step
graph is unrolled for the example's ``T``, which is then fixed, as the
manifest and the report's ``exporter`` notes say why). Where a layer
learns from labels at inference (reward-modulated STDP) both graphs take
them as the input ``teacher`` (int64 ``[batch]``, ``-1``: no label), right
after ``x`` (step) or ``x_seq`` (unrolled: the same labels for every step).
Verified in ONNX Runtime.
"""
import os.path as osp

import numpy as np
import torch
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.registry import DEPLOY_TARGETS
from .artefacts import (teacher_spec, tensor_spec, write_initial_state,
                        write_manifest)
from .base import DeployTarget, Export, Runtime
from .nets import UnrolledNet, example_teacher, script_unrolled
from .onnx_export import (OPSET, TORCHSCRIPT, export_graph, exporter_note,
                          exporter_summary)
from .torchscript import example_states, trace_examples

__all__ = ['OnnxTarget', 'OnnxRuntime', 'OPSET']


def _require(module):
    try:
        return __import__(module)
    except ImportError:
        raise ConfigError(
            f'the onnx target needs the {module!r} package: pip install '
            'onnx onnxruntime onnxscript (or pip install bidl-train[deploy])'
        ) from None


def _scan():
    """torch's ``scan`` (a private module in torch 2.13: no public name)."""
    from torch._higher_order_ops.scan import scan
    return scan


class ScanUnrolled(nn.Module):
    """``x_seq [T, B, ...] (, teacher) -> logits``: all steps from a fresh
    state as one ``scan`` over axis 0, which ``torch.export`` keeps as a
    loop of any length (ONNX ``Scan``) instead of unrolling it."""

    def __init__(self, step_net):
        super().__init__()
        self.step_net = step_net

    def forward(self, x_seq, teacher=None):
        step_net = self.step_net

        def step(states, x_t):
            y, new_states, _ = step_net._run(x_t, states, teacher)
            # a scan output may not alias a carried value
            return new_states, y.clone()

        fresh = step_net.initial_states(x_seq[0])
        _, ys = _scan()(step, fresh, x_seq)
        return ys[-1]


def _dynamic(args, names, axes, shared=()):
    """Per argument: its dynamic axes (``axes``; ``teacher``: the batch on
    axis 0), or None for a scalar or a ``shared`` state (no batch axis)."""
    return [({0: 'batch'} if name == 'teacher' else dict(axes))
            if arg.dim() > 0 and name not in shared else None
            for name, arg in zip(names, args)]


def _export_step(step_net, example, path, outputs):
    """The state-aware graph; ``forward(x, *inputs)`` takes the teacher and
    states as varargs, so their dynamic shapes are one nested tuple."""
    inputs = step_net.input_names
    dynamic = _dynamic(example, inputs, {0: 'batch'},
                       step_net.shared_state_names)
    axes = {name: d for name, d in zip(inputs, dynamic) if d}
    return export_graph(
        path, inputs, outputs,
        dynamo=(step_net, example, (dynamic[0], tuple(dynamic[1:]))),
        torchscript=lambda: (step_net, example, axes))


def _export_unrolled(step_net, x_t, args, names, path, dynamic_t,
                     legacy_dynamic_t):
    """The T-step graph: a scan (dynamo) or scripted loop (TorchScript) for
    a dynamic ``T``, else the Python loop unrolled for ``args[0]``'s T.
    ``legacy_dynamic_t``: whether a fallback to the TorchScript exporter
    can keep T dynamic (not at fp16: see :meth:`OnnxTarget.export`)."""
    def axes(dynamic):
        return {0: 'T', 1: 'batch'} if dynamic else {1: 'batch'}
    dynamic = _dynamic(args, names, axes(dynamic_t))
    legacy_axes = {name: d for name, d in zip(
        names, _dynamic(args, names, axes(legacy_dynamic_t))) if d}
    traced = UnrolledNet(step_net).eval()
    module = ScanUnrolled(step_net).eval() if dynamic_t else traced
    return export_graph(
        path, names, ['logits'], dynamo=(module, args, tuple(dynamic)),
        # the scripted loop is built only on a fallback
        torchscript=lambda: (script_unrolled(step_net, x_t)
                             if legacy_dynamic_t else traced,
                             args, legacy_axes))


def _fix_loop_types(path):
    """Give the unrolled graph's ``Loop`` the types its values really have.

    The TorchScript-based exporter types the loop body's outputs from its
    float32 trace (so an fp16 export claims float logits) and leaves the
    state sequence's element type empty, which ONNX Runtime refuses to
    load. A loop-carried value has, by definition, the type of the body
    input it feeds back into, so each carried output gets its input's type,
    and the graph output ``logits`` (the carried ``y``) gets ``y``'s type.
    """
    import onnx
    model = onnx.load(path)
    graph = model.graph
    for node in graph.node:
        if node.op_type != 'Loop':
            continue
        body = next(a.g for a in node.attribute if a.name == 'body')
        carried = body.input[2:]  # after the iteration count and cond
        for value_in, value_out in zip(carried, body.output[1:]):
            value_out.type.CopyFrom(value_in.type)
        for name, value_in in zip(node.output, carried):
            for out in graph.output:
                if out.name == name:
                    out.type.CopyFrom(value_in.type)
    onnx.save(model, path)


@DEPLOY_TARGETS.register_module(name='onnx')
class OnnxTarget(DeployTarget):
    name = 'onnx'
    description = ('ONNX step graph (named state inputs/outputs) and '
                   'unrolled T-step graph, verified in ONNX Runtime')

    def export(self, step_net, x_seq, out_dir):
        _require('onnx')
        example = trace_examples(step_net, x_seq)
        inputs = step_net.input_names
        teacher = teacher_spec(step_net)
        # the unrolled graph's inputs: x_seq, then the labels of all steps
        loop_names, loop_args = ['x_seq'], (x_seq[:, :1], )
        if teacher:
            loop_names.append('teacher')
            loop_args += (example_teacher(), )
        outputs = (['y'] + [f'{n}.next' for n in step_net.state_names] +
                   step_net.spike_names)
        shared = step_net.shared_state_names
        files = dict(step=osp.join(out_dir, 'step.onnx'),
                     unrolled=osp.join(out_dir, 'unrolled.onnx'))
        steps = int(x_seq.shape[0])
        # a node whose step cannot be put in a loop body (see
        # Node.onnx_loop): there the T-step graph is traced, T fixed
        # (manifest, report). fp16: the dynamo exporter's Scan keeps T
        # dynamic, but inside the TorchScript exporter's Loop body Python
        # scalars (``1.0 - s``) are typed float32 against half tensors, an
        # invalid graph: a fallback at fp16 is traced, T fixed
        unloopable = [source for source, node in zip(step_net.sources,
                                                     step_net.nodes)
                      if not node.onnx_loop]
        fp16 = example[0].dtype == torch.float16
        dynamic_t = not unloopable
        why = ('fp16 export by the TorchScript-based exporter, which types '
               'Python scalars in a Loop body as float32' if fp16 else
               'a convolution whose kernel is state (a learning persistent '
               'plastic conv layer: ' + ', '.join(unloopable) + ') cannot '
               'be a loop body: ONNX Conv needs a constant kernel shape in '
               "the TorchScript exporter's Loop, and the dynamo exporter "
               "cannot capture the layer's step in a scan (it reads the "
               'teaching labels from a ContextVar, which torch.export does '
               'not trace inside torch.scan)')
        with torch.no_grad():
            graphs = {
                'step.onnx': _export_step(step_net, example, files['step'],
                                          outputs),
                'unrolled.onnx': _export_unrolled(
                    step_net, example[0], loop_args, loop_names,
                    files['unrolled'], dynamic_t, dynamic_t and not fp16)}
            results = step_net(*example)
        legacy = graphs['unrolled.onnx']['used'] == TORCHSCRIPT
        dynamic_t = dynamic_t and not (fp16 and legacy)
        if dynamic_t and legacy:
            _fix_loop_types(files['unrolled'])
        exporter = exporter_summary(graphs)
        if not dynamic_t:  # why the unrolled graph could not loop
            exporter['notes'] = [f'unrolled.onnx: T fixed at {steps}: {why}']
        loop = ('Loop' if graphs['unrolled.onnx']['used'] == TORCHSCRIPT
                else 'Scan')
        t_note = (f'T (axis 0, an ONNX {loop}) and batch (axis 1) are dynamic'
                  if dynamic_t else f'T is FIXED at {steps} ({why}: '
                  'unrolled by tracing); batch (axis 1) is dynamic; the '
                  'step graph serves any T')
        import onnx
        for path in (files['step'], files['unrolled']):
            onnx.checker.check_model(onnx.load(path))
        files['initial_state'] = write_initial_state(
            out_dir, step_net.state_names, example_states(step_net, example))
        unrolled = dict(file='unrolled.onnx', input=tensor_spec(
            'x_seq', x_seq[:, :1], batch_axis=1), output='logits', note=t_note)
        if teacher:
            unrolled['inputs'] = loop_names
        files['manifest'] = write_manifest(
            out_dir, format='onnx', opset=OPSET, exporter=exporter,
            time_steps=steps, unrolled_time_steps=(
                'dynamic' if dynamic_t else steps),
            step=dict(file='step.onnx',
                      inputs=[tensor_spec(n, t, shared)
                              for n, t in zip(inputs, example)],
                      outputs=[tensor_spec(n, t, [f'{s}.next'
                                                  for s in shared])
                               for n, t in zip(outputs, results)]),
            unrolled=unrolled, teacher=teacher,
            initial_state='initial_state.npz', shared_states=shared,
            usage="feed state '<name>' from output '<name>.next' of the "
            'previous step; start from initial_state.npz (repeat along '
            'axis 0 to the batch size, except shared_states: no batch '
            'axis)' + ("; feed 'teacher' the labels of the batch (-1: "
                       'none) at every step' if teacher else ''))
        return Export(files, inputs, ['y'] + step_net.state_names +
                      step_net.spike_names, step_net.state_names,
                      step_net.spike_names,
                      notes=[exporter_note(exporter),
                             f'unrolled.onnx: {t_note}'],
                      shared_states=shared, teacher=teacher,
                      report=dict(exporter=exporter))

    def load(self, export):
        return OnnxRuntime(export.files['step'], export.files['unrolled'],
                           export.input_names)


class OnnxRuntime(Runtime):

    def __init__(self, step_path, unrolled_path, input_names):
        ort = _require('onnxruntime')
        options = ort.SessionOptions()
        options.log_severity_level = 3
        providers = ['CPUExecutionProvider']
        self.step_session = ort.InferenceSession(step_path, options,
                                                 providers=providers)
        self.unrolled_session = ort.InferenceSession(
            unrolled_path, options, providers=providers)
        self.input_names = input_names

    def step(self, x_t, states, teacher=None):
        lead = [x_t]
        if teacher is not None:
            lead.append(np.asarray(teacher, np.int64))
        feed = dict(zip(self.input_names, lead + list(states)))
        return self.step_session.run(None, feed)

    def unrolled(self, x_seq, teacher=None):
        feed = {'x_seq': np.ascontiguousarray(x_seq)}
        if teacher is not None:
            feed['teacher'] = np.asarray(teacher, np.int64)
        return self.unrolled_session.run(None, feed)[0]
