"""TorchScript target: traced single-step and T-step graphs.

``step.pt`` is the state-aware graph ``forward(x_t, *states) -> (y_t,
*new_states, *spikes)``; ``unrolled.pt`` runs all steps of ``x_seq [T, B,
...]`` from a fresh state and returns the aggregated logits. Where a layer
learns from labels at inference both take them right after the input:
``step(x_t, teacher, *states)``, ``unrolled(x_seq, teacher)`` (int64
``[B]``, ``-1``: no label, no reward). ``torch.jit.load``
opens both without bidl-train. ``step.pt`` is traced (batch free);
``unrolled.pt`` is a scripted loop around the traced step, so ``T`` is free
too (see :func:`~.nets.script_unrolled`).

TorchScript is deprecated in torch (2.13 warns at every ``torch.jit.trace``,
``script`` and ``load``). The target stays while torch ships TorchScript;
the per-call warnings of bidl-train's own calls are silenced (no user can
act on them) and the report carries one note saying that the format is
deprecated and what to use instead.
"""
import os.path as osp
import warnings
from contextlib import contextmanager

import numpy as np
import torch

from bidl_train.registry import DEPLOY_TARGETS
from .artefacts import (teacher_spec, tensor_spec, write_initial_state,
                        write_manifest)
from .base import DeployTarget, Export, Runtime
from .nets import example_teacher, script_unrolled

__all__ = ['TorchScriptTarget', 'TorchScriptRuntime', 'trace_examples',
           'example_states', 'jit_quietly', 'DEPRECATION_NOTE']

DEPRECATION_NOTE = (
    'TorchScript (torch.jit) is deprecated in torch ' + torch.__version__ +
    ': step.pt and unrolled.pt load with torch.jit.load while torch ships '
    'TorchScript; for artefacts that outlive it deploy --target onnx')


@contextmanager
def jit_quietly():
    """Run bidl-train's own ``torch.jit`` calls without torch's per-call
    deprecation warnings (and the tracer's warnings about Python values it
    freezes, which the verification covers); other warnings still show."""
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message=r'`torch\.jit\.',
                                category=DeprecationWarning)
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        yield


def trace_examples(step_net, x_seq):
    """The step example for one sample, in the order of
    ``step_net.input_names``: ``(x_0, *initial_states)``, with the labels
    ``teacher = [-1]`` after ``x_0`` where the net needs a teacher."""
    x_t = x_seq[0, :1]
    with torch.no_grad():
        states = step_net.initial_states(x_t)
    teacher = [example_teacher()] if step_net.needs_teacher else []
    return (x_t, *teacher, *states)


def example_states(step_net, example):
    """The initial states in a :func:`trace_examples` tuple."""
    return list(example[len(example) - len(step_net.state_names):])


@DEPLOY_TARGETS.register_module(name='torchscript')
class TorchScriptTarget(DeployTarget):
    name = 'torchscript'
    description = ('TorchScript step (state in/out) and unrolled T-step '
                   'modules; torch.jit.load, no bidl-train needed')

    def export(self, step_net, x_seq, out_dir):
        example = trace_examples(step_net, x_seq)
        files = dict(step=osp.join(out_dir, 'step.pt'),
                     unrolled=osp.join(out_dir, 'unrolled.pt'))
        with jit_quietly():
            with torch.no_grad():
                step = torch.jit.trace(step_net, example, check_trace=False)
            full = script_unrolled(step_net, example[0])
            step.save(files['step'])
            full.save(files['unrolled'])
        files['initial_state'] = write_initial_state(
            out_dir, step_net.state_names, example_states(step_net, example))
        inputs = step_net.input_names
        shared = step_net.shared_state_names
        teacher = teacher_spec(step_net)
        with torch.no_grad():
            outputs = step_net(*example)
        unrolled = dict(file='unrolled.pt', input=tensor_spec(
            'x_seq', x_seq[:, :1], batch_axis=1), output='logits',
            note='T (axis 0) and batch (axis 1) are free: a scripted '
            'loop over x_seq.size(0)')
        call = 'step(x_t, *states)'
        if teacher:
            unrolled['inputs'] = ['x_seq', 'teacher']
            call = 'step(x_t, teacher, *states)'
        files['manifest'] = write_manifest(
            out_dir, format='torchscript', time_steps=int(x_seq.shape[0]),
            unrolled_time_steps='dynamic',
            step=dict(file='step.pt',
                      inputs=[tensor_spec(n, t, shared)
                              for n, t in zip(inputs, example)],
                      outputs=[tensor_spec(n, t, shared) for n, t in zip(
                          step_net.output_names, outputs)]),
            unrolled=unrolled, teacher=teacher,
            initial_state='initial_state.npz', shared_states=shared,
            usage=f'y, *rest = {call}; new states are '
            'rest[:len(states)], then one spike tensor per spiking layer; '
            'repeat the initial states along axis 0 to the batch size, '
            'except shared_states (no batch axis)')
        return Export(files, inputs, step_net.output_names,
                      step_net.state_names, step_net.spike_names,
                      notes=['unrolled.pt: T and batch dynamic (scripted '
                             'time loop)', DEPRECATION_NOTE],
                      shared_states=shared,
                      teacher=teacher)

    def load(self, export):
        return TorchScriptRuntime(export.files['step'],
                                  export.files['unrolled'])


class TorchScriptRuntime(Runtime):

    def __init__(self, step_path, unrolled_path):
        with jit_quietly():
            self.step_module = torch.jit.load(step_path)
            self.unrolled_module = torch.jit.load(unrolled_path)

    @torch.no_grad()
    def step(self, x_t, states, teacher=None):
        lead = [torch.from_numpy(x_t)]
        if teacher is not None:
            lead.append(torch.from_numpy(np.asarray(teacher, np.int64)))
        outs = self.step_module(*lead,
                                *[torch.from_numpy(s) for s in states])
        return [o.numpy() for o in outs]

    @torch.no_grad()
    def unrolled(self, x_seq, teacher=None):
        args = [torch.from_numpy(x_seq)]
        if teacher is not None:
            args.append(torch.from_numpy(np.asarray(teacher, np.int64)))
        return self.unrolled_module(*args).numpy()
