"""Run written deployment artefacts by themselves, for the deploy tests.

Everything comes from the files: the state names, their batch axes and the
output order from ``manifest.json``, the initial values from
``initial_state.npz``; the graph runs in its own runtime (``torch.jit.load``
or ONNX Runtime) in a closed loop, feeding its new states back.
"""
import contextlib
import io
import json
from functools import partial

import numpy as np
import pytest
import torch

from bidl_train.deploy.verify import flatten_state
from bidl_train.learning.teacher import teaching
from bidl_train.neurons import BaseNeuron
from bidl_train.registry import MODELS


def run_step_files(out_dir, target, x, teacher=None):
    """Every output of every step of ``step.pt``/``step.onnx`` on ``x``
    (``[T, B, ...]``): a list of ``{name: array}`` with ``'y'``, the states
    by their names (ONNX's ``<name>.next`` without the suffix) and the
    spikes (``spikes.<layer>``). ``teacher``: the labels ``[B]`` for the
    ``teacher`` input, given exactly when the manifest declares one."""
    manifest = json.load(open(out_dir / 'manifest.json'))
    if (manifest.get('teacher') is None) != (teacher is None):
        raise ValueError('give labels exactly when the graph has a teacher '
                         f"input (manifest: {manifest.get('teacher')})")
    lead = [] if teacher is None else [np.asarray(teacher, np.int64)]
    inputs = [spec for spec in manifest['step']['inputs']
              if spec['name'] != 'teacher']
    names = [spec['name'] for spec in inputs[1:]]
    outputs = [spec['name'][:-len('.next')] if spec['name'].endswith(
        '.next') else spec['name'] for spec in manifest['step']['outputs']]
    init = np.load(out_dir / 'initial_state.npz')
    batch = x.shape[1]
    states = [np.repeat(init[spec['name']], batch, 0)
              if spec['batch_axis'] == 0 else init[spec['name']]
              for spec in inputs[1:]]
    if target == 'torchscript':
        module = torch.jit.load(str(out_dir / 'step.pt'))

        def run(x_t, states):
            with torch.no_grad():
                outs = module(*[torch.from_numpy(a) for a in
                                [x_t] + lead + list(states)])
            return [o.numpy() for o in outs]
    else:
        import onnxruntime as ort
        session = ort.InferenceSession(str(out_dir / 'step.onnx'),
                                       providers=['CPUExecutionProvider'])

        def run(x_t, states):
            given = ['x'] + (['teacher'] if lead else []) + names
            return session.run(None, dict(zip(given, [x_t] + lead +
                                              list(states))))
    steps = []
    for x_t in x.numpy():
        outs = dict(zip(outputs, run(x_t, states)))
        states = [outs[n] for n in names]
        steps.append(outs)
    return steps


class UnknownNeuron(BaseNeuron):
    """A neuron kind bidl-deploy does not know (it may hide state): the
    lowering must refuse it by layer name."""

    state_names = ('v', )

    def init_state(self, x_t):
        return {'v': torch.zeros_like(x_t)}

    def step(self, x_t, state=None):
        v = (state or self.init_state(x_t))['v'] + x_t
        return (v > 1).float(), {'v': v}


def plastic_classifier(layer, plasticity, rule, learning=None, units=6,
                       channels=3):
    """A small classifier (eval mode) on ``[T, B, 2, 8, 8]`` whose plastic
    layer is a ``PlasticFcLif`` of ``units`` after a Conv2dLif, or a
    ``PlasticConv2dLif`` of ``channels``."""
    torch.manual_seed(0)
    if layer == 'PlasticFcLif':
        layers = [dict(type='Conv2dLif', in_channels=2, out_channels=4,
                       pool=2),
                  dict(type='Flatten'),
                  dict(type='PlasticFcLif', in_features=64,
                       out_features=units, plasticity=plasticity, rule=rule,
                       learning=learning)]
        features = units
    else:
        layers = [dict(type='PlasticConv2dLif', in_channels=2,
                       out_channels=channels, pool=2, plasticity=plasticity,
                       rule=rule, learning=learning),
                  dict(type='Flatten')]
        features = channels * 16
    model = MODELS.build(dict(
        type='SpikingClassifier',
        backbone=dict(type='SpikingSequential', layers=layers),
        head=dict(type='SpikingClsHead', in_features=features,
                  num_classes=3)))
    return model.eval()


def assert_norse_reproduces_logits(graph, x, logits):
    """Norse's ``from_nir`` import of ``graph``, run one unbatched sample
    at a time (a Flatten after a conv counts unbatched dims) at the
    export's dt, averages over time to ``logits``."""
    import norse.torch as norse_torch
    for b in range(x.shape[1]):
        net = norse_torch.from_nir(graph, dt=1e-4)  # Norse's default: 1e-3
        state, outs = None, []
        with torch.no_grad():
            for t in range(x.shape[0]):
                out, state = net(x[t, b], state)
                outs.append(out.reshape(-1))
        torch.testing.assert_close(torch.stack(outs).mean(0), logits[b],
                                   atol=1e-5, rtol=0)


def logits_and_spikes(model, x):
    """The model's own logits on ``x`` and the output of every neuron
    module (by module name), recorded with forward hooks."""
    spikes, handles = {}, []
    for name, module in model.named_modules():
        if isinstance(module, BaseNeuron):
            handles.append(module.register_forward_hook(
                lambda m, i, out, name=name: spikes.__setitem__(name, out)))
    try:
        with torch.no_grad():
            logits = model(x, mode='tensor')
    finally:
        for handle in handles:
            handle.remove()
    return logits, spikes


def pytorch_reference(model, x, teacher=None):
    """The model's own logits, spikes (forward hooks on every spiking neuron
    and plastic layer) and ``model.step`` outputs and states per step.
    ``teacher``: labels ``[B]`` given by ``teaching`` to every plastic layer
    whose rule needs them, for both runs."""
    with teaching(teacher):
        return _reference(model, x)


def _reference(model, x):
    spikes, handles = {}, []
    for name, module in model.named_modules():
        if isinstance(module, BaseNeuron) and getattr(
                module, 'mode', 'spike') == 'spike':
            key = name
        elif hasattr(module, 'local_shape'):  # a plastic layer: its spikes
            key = f'{name}.neuron'
        else:
            continue
        handles.append(module.register_forward_hook(
            lambda m, i, out, key=key: spikes.__setitem__(key, out)))
    # a learning persistent plastic layer commits its local weight at the
    # end of a multi-step call: put it back for the step form
    kept = [(m, {k: v.clone() for k, v in m.local_state_dict().items()})
            for m in model.modules() if hasattr(m, 'local_state_dict')]
    with torch.no_grad():
        logits = model(x, mode='tensor')
        for handle in handles:
            handle.remove()
        for module, buffers in kept:
            for key, value in buffers.items():
                getattr(module, key).copy_(value)
        steps, state = [], None
        for x_t in x:
            y, state = model.step(x_t, state)
            steps.append(dict(flatten_state(state), y=y))
    return logits, spikes, steps


def assert_matches_model(got, logits, spikes, steps, state_tol=1e-5,
                         folded=()):
    """Deployed per-step outputs ``got`` equal the model's: ``y`` within
    1e-5 and every state within ``state_tol`` times its largest magnitude
    (at least 1) over the steps, the last ``y`` equal to the logits within
    1e-5, every spike exactly; every state of ``model.step`` is exported
    but the ``folded`` ones (constants folded into weights)."""
    steps = [{k: v for k, v in step.items() if k not in folded}
             for step in steps]
    assert set(got[0]) - {'y'} - {n for n in got[0]
                                  if n.startswith('spikes.')} == \
        set(steps[0]) - {'y'}
    scale = {name: max(1.0, max(float(step[name].abs().max())
                                for step in steps)) for name in steps[0]}
    for t, (mine, ref) in enumerate(zip(got, steps)):
        for name, want in ref.items():
            tol = 1e-5 if name == 'y' else state_tol * scale[name]
            np.testing.assert_allclose(mine[name], want.numpy(), atol=tol,
                                       rtol=0, err_msg=f'{name} t={t}')
    np.testing.assert_allclose(got[-1]['y'], logits.numpy(), atol=1e-5)
    exported = {n[len('spikes.'):] for n in got[0] if n.startswith('spikes.')}
    assert exported == set(spikes)
    for layer, want in spikes.items():
        deployed = np.stack([step[f'spikes.{layer}'] for step in got])
        np.testing.assert_array_equal(deployed, want.numpy(), err_msg=layer)


#: a tiny deployable config (16x16 event frames, T = 4, 2 classes) whose
#: ``{loader}`` reads SyntheticGesture's test split from ``{data!r}`` with
#: ``{users_test}`` users: bidl-deploy's CLI tests write it
TINY_DEPLOY_CONFIG = '''
default_scope = 'bidl_train'
model = dict(
    type='SpikingClassifier',
    backbone=dict(type='ConvLifNet', in_channels=2, input_size=16,
                  channels=[4], pools=[2], fc=[16]),
    head=dict(type='SpikingClsHead', in_features=16, num_classes=2))
{loader} = dict(
    batch_size=4, num_workers=0,
    dataset=dict(type='SyntheticGesture', data_root={data!r},
                 num_classes=2, split='test', users_train=1,
                 users_test={users_test}, conditions=1, cache=False,
                 representation=dict(type='EventFrames', T=4,
                                     split_by='number', size=16)))
'''


def tiny_deploy_config(data, users_test=2, loader='val_dataloader'):
    """TINY_DEPLOY_CONFIG's text for data root ``data``, the split read by
    the dataloader ``loader``."""
    return TINY_DEPLOY_CONFIG.format(data=str(data), users_test=users_test,
                                     loader=loader)


def tiny_model(seed):
    """A small conv + fc spiking classifier on ``[T, B, 2, 8, 8]``; the
    seed picks its weights, so two seeds give two distinguishable models."""
    torch.manual_seed(seed)
    model = MODELS.build(dict(
        type='SpikingClassifier',
        backbone=dict(type='ConvLifNet', in_channels=2, input_size=8,
                      channels=[4], pools=[2], fc=[8], norm=False),
        head=dict(type='SpikingClsHead', in_features=8, num_classes=3)))
    return model.eval()


def tiny_inputs(T=4, B=2):
    gen = torch.Generator().manual_seed(0)
    return (torch.rand(T, B, 2, 8, 8, generator=gen) > 0.6).float()


def _snntorch(graph):
    import_nir = pytest.importorskip('snntorch.import_nir')
    import snntorch.utils as sutils
    with contextlib.redirect_stdout(io.StringIO()):  # it prints warnings
        net = import_nir.import_from_nir(graph)
    sutils.reset(net)

    def run(x_t, state):
        out = net(x_t)
        return (out[0] if isinstance(out, tuple) else out), None
    return net, run


def _norse_modules(graph):
    """Norse's own NIR node mapping at the export's dt, wired by nirtorch's
    topological interpreter."""
    pytest.importorskip('norse.torch')
    import nir
    import nirtorch
    from norse.torch.utils.import_nir import _import_norse_module
    convert = partial(_import_norse_module, dt=1e-4)
    kinds = (nir.Affine, nir.Conv2d, nir.Flatten, nir.SumPool2d, nir.LIF,
             nir.IF, nir.CubaLIF)
    net = nirtorch.nir_to_torch(graph, {kind: convert for kind in kinds})
    return net, lambda x_t, state: net(x_t, state)


def _norse_from_nir(graph):
    norse_torch = pytest.importorskip('norse.torch')
    net = norse_torch.from_nir(graph, dt=1e-4)  # Norse's default is 1e-3
    return net, lambda x_t, state: net(x_t, state)


#: NIR importers of the peer frameworks: name -> graph -> (network, step
#: function ``run(x_t, state) -> (out, state)``)
IMPORTERS = dict(snntorch=_snntorch, norse=_norse_modules,
                 norse_from_nir=_norse_from_nir)


def assert_importer_reproduces(importer, graph, neurons, model, x):
    """Every spike of every layer, and the logits, of ``importer``'s
    (a key of :data:`IMPORTERS`) import of the NIR ``graph`` equal
    PyTorch's; ``neurons``: layer name -> the graph's neuron node."""
    logits, spikes = logits_and_spikes(model, x)
    assert sorted(neurons) == sorted(spikes)
    for b in range(x.shape[1]):  # a Flatten after a conv: unbatched samples
        net, run = IMPORTERS[importer](graph)
        modules = dict(net.named_modules())
        got = {key: [] for key in neurons.values()}
        handles = [modules[key].register_forward_hook(
            lambda m, i, out, key=key: got[key].append(
                (out[0] if isinstance(out, tuple) else out).clone()))
            for key in got]
        state, outs = None, []
        with torch.no_grad():
            for t in range(x.shape[0]):
                out, state = run(x[t, b], state)
                outs.append(out.reshape(-1))
        for handle in handles:
            handle.remove()
        for layer, key in neurons.items():
            want = spikes[layer][:, b]
            assert 0 < int(want.sum()) < want.numel(), layer  # not vacuous
            mismatches = int((torch.stack(got[key]).reshape(want.shape) !=
                              want).sum())
            assert mismatches == 0, f'{importer}: {layer} ({key})'
        torch.testing.assert_close(torch.stack(outs).mean(0), logits[b],
                                   atol=1e-5, rtol=0)
