"""Benchmark multi-step LIF: fused kernel vs plain autograd loop vs peers.

Measures, for one forward + backward pass:

* wall time: the median of ``--repeats`` runs after one warm-up, the
  implementations taking turns round-robin so that load from other
  processes on a shared machine hits them alike, and
* memory saved for backward: the bytes of every distinct tensor storage the
  autograd graph keeps between forward and backward (counted with
  ``torch.autograd.graph.saved_tensors_hooks``; a storage shared by several
  nodes counts once; the input itself is excluded, and the ``keeps x``
  column says whether the graph holds on to the input: a kernel that saves
  only its input costs nothing extra when the caller's graph keeps that
  tensor anyway, and one input-sized tensor when it would have been freed).

Workloads: a LIF layer on ``[T, B, 128, 32, 32]`` float32 (T = 16 and 64 by
default) and a small conv-LIF network. Peers (SpikingJelly multi-step
``LIFNode``, snnTorch ``Leaky`` stepped over T, Norse ``LIFBoxCell``) run in
the same process when installed and are skipped otherwise. ``bidl fused``
is the fused kernel as the library picks it on CPU (the compiled C++ kernel
when it builds), ``bidl fused (triton)`` the Triton kernel (on CUDA, when
triton is installed), ``bidl fused (torch)`` the pure-PyTorch fused kernel
every machine has, ``bidl loop`` the plain autograd loop. All neurons use
the same dynamics (alpha = 1 - 1/tau = 0.5, theta = 1, hard reset to 0) and
the sigmoid surrogate (alpha = 4). Ratios are to SpikingJelly
(``/SJ``), to the pure-PyTorch fused kernel (``/torch``) and, for the layer,
to the memory floor ``y = x * 0.5`` (``/floor``: one read and one write of
the tensor forward and backward) of the same run.

``--configs`` adds one table per config: a whole training step (forward,
cross-entropy on random labels, backward) of the config's model at
``--config-batch`` on random sparse event frames of its ``[T, C, H, W]``,
for the configs whose LIFs have BatchNorm on the membrane (``norm_state``):
``bidl loop`` (every LIF stepped by autograd), ``bidl fused`` (the kernel
the library picks: on CPU the compiled one with the membrane BatchNorm
inside), ``bidl fused (torch)``, ``fused, synaptic BN`` (each membrane
BatchNorm moved onto the synaptic current, one BatchNorm over ``T * B``
before the plain fused LIF: the alternative model the fused kernel could
already run), ``spikingjelly`` and ``spikingjelly (m)`` (see
:func:`sj_node`: SpikingJelly's own membrane-BatchNorm neuron
``MPBNLIFNode`` on the layer's BatchNorm module, in single-step mode over
``for x_t in x_seq`` (the fastest way SpikingJelly runs it, the row the
``/SJ`` ratios divide by), and in SpikingJelly's multi-step mode, whose
per-step loop costs O(T^2) in the backward). All rows start from the same
weights; ``saved`` counts everything the step keeps for backward
(convolutions included). Configs without ``norm_state`` get the loop,
fused and ``spikingjelly`` rows (every LIF replaced by SpikingJelly's
equivalent: its fused ``LIFNode`` for plain spiking LIFs, its stepped
node with BIDL's training noise or LIAF output where the LIF has them,
plus the ``(m)`` row for those). ``--breakdown`` adds, per config, where
one profiled step of each row spends its time (convolutions, linear
layers, the fused neuron kernels, the rest) and the least ``time/SJ`` a
neuron costing nothing could reach, ``(convolutions + linear) / SJ``.

Everything runs on ``--device`` (CUDA when available, else CPU); on CUDA
each timed pass is bracketed by synchronisations. SpikingJelly 2.0 picks
its CUDA implementation itself (native CUDA when built from source, else
its Triton kernel, else PyTorch; ``SJ_LIF_CUDA_IMPLEMENTATION=torch``
forces the last), read once at import: run twice to compare both.

Usage::

    python tools/benchmark_neurons.py                 # the full default set
    python tools/benchmark_neurons.py --steps 16 --batch 8 --repeats 2
    python tools/benchmark_neurons.py --steps 16 --net-steps 0  # no network
    # training steps of real configs with membrane BatchNorm (norm_state):
    python tools/benchmark_neurons.py --steps --net-steps 0 --repeats 5 \
        --configs configs/dvs_gesture.py configs/cifar10_dvs.py \
        configs/jester.py configs/n_mnist.py
    # the dvs_gesture step against SpikingJelly, with the time breakdown:
    python tools/benchmark_neurons.py --steps --net-steps 0 --repeats 5 \
        --configs configs/dvs_gesture.py --breakdown \
        --skip 'bidl fused (torch)'
"""
import argparse
import copy
import random
import statistics
import time

import torch
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.layers import Aggregation, Conv2dLif, FcLif, SpikingSequential
from bidl_train.neurons import LIF, SigmoidSurrogate
from bidl_train.neurons.functional import select_kernel
from bidl_train.utils.time_steps import config_num_steps

TAU = 2.0
ALPHA = 1.0 - 1.0 / TAU
THETA = 1.0


# ---------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------
def saved_bytes_and_output(fn, x):
    """Run ``fn(x)``: (bytes of the distinct storages saved for backward
    other than the input's, whether the input is saved, output)."""
    storages = {}
    input_ptr = x.untyped_storage().data_ptr()
    keeps_input = []

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() != input_ptr:
            storages[storage.data_ptr()] = storage.nbytes()
        else:
            keeps_input.append(True)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = fn(x)
    return sum(storages.values()), bool(keeps_input), y


def synchronize(device):
    """Wait for the GPU's queued work (CUDA launches return at once)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def run_once(fn, make_input, device):
    """(seconds of one forward+backward, (bytes saved for backward, whether
    the input is kept))."""
    x = make_input()
    synchronize(device)
    start = time.perf_counter()
    saved, keeps_input, y = saved_bytes_and_output(fn, x)
    y.backward(torch.ones_like(y))
    synchronize(device)
    return time.perf_counter() - start, (saved, keeps_input)


def measure_all(candidates, make_input, repeats, device, skip=()):
    """{name: (median seconds, (saved bytes, keeps input))}, in turns.

    Each round runs every implementation once, in an order shuffled anew
    (with a fixed seed) each round: a fixed order favours some positions
    (on a loaded 2-core machine the row run right after SpikingJelly's
    measured 1.57x the memory floor in a fixed order, 1.33x shuffled).
    A peer that fails in the first (warm-up) round, e.g. one that does not
    support the device, is reported and left out; the others go on.
    """
    names = [n for n in candidates if n not in skip]
    times = {n: [] for n in names}
    saved = {}
    order = random.Random(0)
    for i in range(repeats + 1):
        turn = list(names)
        if i > 0:
            order.shuffle(turn)
        for name in turn:
            if name not in names:
                continue
            if i == 0:  # the warm-up round: allocators, caches, compiles
                try:
                    _, saved[name] = run_once(candidates[name], make_input,
                                              device)
                except Exception as err:  # noqa: BLE001 - report, go on
                    print(f'{name} left out: {type(err).__name__}: {err}')
                    names.remove(name)
                continue
            elapsed, saved[name] = run_once(candidates[name], make_input,
                                            device)
            times[name].append(elapsed)
    return {n: (statistics.median(times[n]), saved[n]) for n in names}


# ---------------------------------------------------------------------------
# Single LIF layer
# ---------------------------------------------------------------------------
def triton_missing(device):
    """None when the Triton kernel runs on ``device``, else why not."""
    try:
        select_kernel(torch.zeros(1, 1, device=device),
                      SigmoidSurrogate().derivative, 'triton')
    except ConfigError as err:
        return str(err)
    return None


def fused_kernels(device):
    """{row name: kernel} of the fused kernels to compare on ``device``."""
    if device.type != 'cuda':
        return {'bidl fused': 'auto', 'bidl fused (torch)': 'torch'}
    kernels = {}
    why = triton_missing(device)
    if why is None:
        kernels['bidl fused (triton)'] = 'triton'
    else:
        print(f'no Triton row: {why}')
    kernels['bidl fused (torch)'] = 'torch'
    return kernels


def memory_floor(x):
    """``y = x * 0.5``: one read and one write of the tensor each way,
    the least any elementwise layer over it can cost (the ``/floor``
    column divides by it)."""
    return x * 0.5


def lif_candidates(device, surrogates=('sigmoid', )):
    """The LIF-layer rows: every fused kernel with the sigmoid surrogate,
    the default kernel with each other surrogate of ``surrogates``, the
    loop, the memory floor and the peers (SpikingJelly with its sigmoid)."""
    cands = {
        name: LIF(alpha=ALPHA, theta=THETA, surrogate='sigmoid',
                  backend='fused', kernel=kernel).to(device)
        for name, kernel in fused_kernels(device).items()}
    for name in surrogates:
        if name != 'sigmoid':
            cands[f'bidl fused [{name}]'] = LIF(
                alpha=ALPHA, theta=THETA, surrogate=name, backend='fused',
                kernel='auto').to(device)
    cands['bidl loop'] = LIF(alpha=ALPHA, theta=THETA, surrogate='sigmoid',
                             backend='loop').to(device)
    cands['memory floor'] = memory_floor
    try:
        from spikingjelly.activation_based import neuron, surrogate
        sj = neuron.LIFNode(tau=TAU, decay_input=False, v_threshold=THETA,
                            v_reset=0.0, step_mode='m',
                            surrogate_function=surrogate.Sigmoid(alpha=4.0)
                            ).to(device)

        def run_sj(x, node=sj):
            node.reset()
            return node(x)

        cands['spikingjelly'] = run_sj
    except ImportError:
        pass
    try:
        import snntorch
        from snntorch import surrogate as snn_surrogate
        leaky = snntorch.Leaky(beta=ALPHA, threshold=THETA,
                               reset_mechanism='zero',
                               spike_grad=snn_surrogate.sigmoid(slope=4)
                               ).to(device)

        def run_snntorch(x, cell=leaky):
            mem = cell.init_leaky()
            out = []
            for x_t in x:
                spk, mem = cell(x_t, mem)
                out.append(spk)
            return torch.stack(out)

        cands['snntorch'] = run_snntorch
    except ImportError:
        pass
    try:
        from norse.torch import LIFBoxCell, LIFBoxParameters
        cell = LIFBoxCell(LIFBoxParameters(
            tau_mem_inv=torch.tensor(1.0 / TAU, device=device),
            v_th=torch.tensor(THETA, device=device))).to(device)

        def run_norse(x, cell=cell):
            state, out = None, []
            for x_t in x:
                spk, state = cell(x_t, state)
                out.append(spk)
            return torch.stack(out)

        cands['norse'] = run_norse
    except ImportError:
        pass
    return cands


# ---------------------------------------------------------------------------
# Small conv-LIF network
# ---------------------------------------------------------------------------
def bidl_net(backend, kernel='auto'):
    neuron = dict(type='LIF', alpha=ALPHA, theta=THETA, surrogate='sigmoid',
                  backend=backend, kernel=kernel)
    return SpikingSequential(
        Conv2dLif(2, 32, pool=2, neuron=neuron),
        Conv2dLif(32, 64, pool=2, neuron=neuron),
        nn.Flatten(),
        FcLif(64 * 8 * 8, 10, neuron=neuron),
        Aggregation('mean'))


def net_candidates(device):
    if device.type == 'cuda':
        kernels = fused_kernels(device)
    else:  # on CPU the kernel the library picks, as always
        kernels = {'bidl fused': 'auto'}
    cands = {name: bidl_net('fused', kernel).to(device)
             for name, kernel in kernels.items()}
    cands['bidl loop'] = bidl_net('loop').to(device)
    try:
        from spikingjelly.activation_based import (functional, layer, neuron,
                                                   surrogate)

        def node():
            return neuron.LIFNode(
                tau=TAU, decay_input=False, v_threshold=THETA, v_reset=0.0,
                step_mode='m', surrogate_function=surrogate.Sigmoid(4.0))

        sj = nn.Sequential(
            layer.SeqToANNContainer(nn.Conv2d(2, 32, 3, padding=1),
                                    nn.MaxPool2d(2), nn.BatchNorm2d(32)),
            node(),
            layer.SeqToANNContainer(nn.Conv2d(32, 64, 3, padding=1),
                                    nn.MaxPool2d(2), nn.BatchNorm2d(64)),
            node(),
            layer.SeqToANNContainer(nn.Flatten(), nn.Linear(64 * 8 * 8, 10)),
            node()).to(device)

        def run_sj(x, net=sj):
            functional.reset_net(net)
            return net(x).mean(0)

        cands['spikingjelly'] = run_sj
    except ImportError:
        pass
    return cands


# ---------------------------------------------------------------------------
# Training steps of real configs (membrane BatchNorm)
# ---------------------------------------------------------------------------
#: The configs of the training-step table (``--configs``).
STEP_CONFIGS = ('configs/dvs_gesture.py', 'configs/cifar10_dvs.py',
                'configs/jester.py', 'configs/n_mnist.py')


def config_input_shape(cfg):
    """``(T, C, H, W)`` of one sample of ``cfg`` (``_input_shape``, else
    the config's ``num_steps`` and the backbone's input size and
    channels)."""
    if cfg.get('_input_shape'):
        return tuple(cfg._input_shape)
    steps = config_num_steps(cfg)
    size = cfg.model.backbone.input_size
    size = (size, size) if isinstance(size, int) else tuple(size)
    return (steps, cfg.model.backbone.in_channels) + size


class SynapticBN(nn.Module):
    """The BatchNorm moved from the membrane to the synaptic current: one
    BatchNorm over all ``T * B`` samples of the input sequence, then the
    LIF without ``norm_state`` (which the fused kernel has always run)."""

    def __init__(self, lif):
        super().__init__()
        self.norm, self.lif = lif.norm, lif
        lif.norm = None

    def forward(self, x_seq):
        x = self.norm(x_seq.flatten(0, 1)).view_as(x_seq)
        return self.lif(x)


def sj_node(lif, step_mode='s'):
    """SpikingJelly's equivalent of the BIDL ``lif``, or None (no
    SpikingJelly): a module taking ``[T, B, ...]`` that resets the node
    and runs it over the sequence.

    The node, same maths as the BIDL LIF (``decay_input=False``, ``tau = 1
    / (1 - alpha)``, same threshold, hard reset to ``v0`` or soft reset,
    same surrogate: ``Rect`` for BIDL's rectangle, same width, else
    ``Sigmoid(4)``):

    * a plain spiking LIF: ``LIFNode``, on SpikingJelly's own fused
      multi-step path (``step_mode`` does not apply);
    * a spiking LIF with membrane BatchNorm (``norm_state``), no training
      noise, ``beta = 0`` and ``v0 = 0`` (or soft reset): SpikingJelly's
      own membrane-BatchNorm neuron, ``MPBNLIFNode`` (Guo et al. 2023,
      ``H = V - V / tau + X``, ``H = BN(H)``, fire, reset), whose ``vbn``
      is the layer's BatchNorm module itself (same weights, same
      running statistics, updated once per step as BIDL's are);
    * anything else (LIAF output, training noise): ``LIFNode`` with its
      one-step function overridden by SpikingJelly's LIF arithmetic plus
      BIDL's extras (``H = V - V / tau + X``, ``H = BN(H)``, ``H~ = H +
      noise std(H) N(0, 1)``, spike by the surrogate from ``H~``, reset;
      analog layers output ``act([H, H~ - theta, r, v][memb_mode])``),
      the way SpikingJelly 2.0 asks a ``BaseNode`` subclass to define a
      neuron.

    The last two have no fused multi-step kernel in SpikingJelly, so they
    step over T, one of two ways (``step_mode``):

    * ``'s'`` (the fast one): the node in single-step mode called on each
      ``x_t`` of ``for x_t in x_seq`` and the outputs stacked. Iterating
      a tensor unbinds it: the backward of all T slices is one stack;
    * ``'m'``: SpikingJelly's own multi-step mode, whose loop
      (``MemoryModule.multi_step_functional_forward``) takes ``x[t]`` by
      indexing: each step's slice has its own backward, which writes a
      zero-filled gradient of the whole ``[T, ...]`` sequence and adds it
      up, T times (O(T^2) memory traffic: at T = 60 most of its time).
    """
    try:
        from spikingjelly.activation_based import base, neuron, surrogate
    except ImportError:
        return None
    from bidl_train.neurons.lif import noise_scale
    alpha = float(lif.leak_factor().detach().mean())
    name = type(lif.surrogate).__name__
    spike_fn = (surrogate.Rect() if name == 'RectangleSurrogate' else
                surrogate.Sigmoid(alpha=4.0))
    norm, noise = lif.norm, lif.noise
    v_reset = (float(lif.v0.detach().mean()) if lif.reset == 'hard' else
               None)
    options = dict(
        tau=1.0 / max(1.0 - alpha, 1e-6), decay_input=False,
        v_threshold=float(lif.theta.detach().mean()), v_reset=v_reset,
        surrogate_function=spike_fn, detach_reset=lif.detach_reset)

    class BIDLExtrasLIFNode(neuron.LIFNode):
        # LIFNode's multi-step function is its fused kernel, which never
        # calls the one-step function below: step over T instead, as
        # SpikingJelly's base class does for any neuron
        multi_step_functional_forward = \
            base.MemoryModule.multi_step_functional_forward

        def single_step_functional_forward(self, inputs, states, **kwargs):
            x, v = inputs[0], states[0]
            h = v - v / self.tau + x
            if norm is not None:
                # the class's forward: a model with norm_stats='per_step'
                # redirects the instance's forward of every BatchNorm outside
                # BIDL neurons to a per-time-step split, which this one,
                # seeing one step, must not get
                h = type(norm).forward(norm, h)
            h_noisy = h
            if self.training and noise > 0:
                with torch.no_grad():
                    jitter = torch.randn_like(h) * (noise_scale(h) * noise)
                h_noisy = h + jitter
            spike = self.surrogate_function(h_noisy - self.v_threshold)
            spike_r = spike.detach() if self.detach_reset else spike
            if self.v_reset is None:  # soft reset
                v = h_noisy - spike_r * self.v_threshold
            else:
                v = (1.0 - spike_r) * h_noisy + spike_r * self.v_reset
            if lif.mode == 'analog':  # LIAF: BIDL's analog output
                out = (h, h_noisy - self.v_threshold, v,
                       v - v / self.tau)[lif.memb_mode]
                return (lif.act(out) if lif.act is not None else out, ), (
                    v, *states[1:])
            return (spike, ), (v, *states[1:])

    spiking = noise == 0 and lif.mode == 'spike'
    if spiking and norm is None:
        node = neuron.LIFNode(step_mode='m', **options)
    elif (spiking and not bool(lif.beta.detach().any())
          and not v_reset):  # MPBN charges towards v_reset: 0 only
        size = ({'out_features': norm.num_features}
                if isinstance(norm, nn.BatchNorm1d) else
                {'out_channels': norm.num_features})
        node = neuron.MPBNLIFNode(step_mode=step_mode, **size, **options)
        node.vbn = norm
    else:
        node = BIDLExtrasLIFNode(step_mode=step_mode, **options)
        node.norm = norm
    return SJSequence(node)


class SJSequence(nn.Module):
    """Runs a SpikingJelly node over ``[T, B, ...]`` from a fresh state
    (as BIDL's neurons start each sequence): in multi-step mode by one
    call, in single-step mode by ``for x_t in x_seq`` (see
    :func:`sj_node`)."""

    def __init__(self, node):
        super().__init__()
        self.node = node

    def forward(self, x_seq):
        self.node.reset()
        if self.node.step_mode == 'm':
            return self.node(x_seq)
        return torch.stack([self.node(x_t) for x_t in x_seq])


def replace_lifs(model, make, membrane_bn_only=True):
    """Replace every ``norm_state`` LIF of ``model`` (every LIF, without
    ``membrane_bn_only``) by ``make(lif)``; None if ``make`` gives None."""
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, LIF) and (child.norm is not None or
                                           not membrane_bn_only):
                replacement = make(child)
                if replacement is None:
                    return None
                setattr(parent, child_name, replacement)
    return model


def config_step_candidates(cfg):
    """{row: model} for one config, every row from the same weights.

    With membrane BatchNorm (``norm_state``): the loop, the fused kernel
    the library picks (the compiled one on CPU), the pure-PyTorch fused
    one, the fused kernel with BatchNorm on the synaptic current instead,
    and SpikingJelly with the same membrane BatchNorm. Without: the loop,
    the fused kernel and SpikingJelly (see :func:`sj_node`)."""
    from bidl_train.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'bidl_train'))
    torch.manual_seed(0)
    base = MODELS.build(cfg.model)

    def variant(backend=None, kernel=None):
        model = copy.deepcopy(base)
        for module in model.modules():
            if isinstance(module, LIF):
                if backend:
                    module.backend = backend
                if kernel:
                    module.kernel = kernel
        return model

    rows = {'bidl loop': variant(backend='loop'), 'bidl fused': variant()}
    lifs = [m for m in base.modules() if isinstance(m, LIF)]
    membrane_bn = any(m.norm is not None for m in lifs)
    if membrane_bn:
        rows['bidl fused (torch)'] = variant(kernel='torch')
        rows['fused, synaptic BN'] = replace_lifs(variant(), SynapticBN)
    else:
        noisy = any(m.noise > 0 for m in lifs)
        print(f'{cfg.filename}: no LIF with norm_state (BatchNorm is on the '
              'synaptic current already)' + (
                  '; training noise > 0, so the fused rows run the loop '
                  'too' if noisy else '') + ': loop, fused and SpikingJelly '
              'rows only')
    sj = replace_lifs(copy.deepcopy(base), sj_node,
                      membrane_bn_only=membrane_bn)
    if sj is not None:
        rows['spikingjelly'] = sj
        if any(isinstance(m, SJSequence) and m.node.step_mode == 's'
               for m in sj.modules()):
            # the same nodes on SpikingJelly's own multi-step loop
            rows['spikingjelly (m)'] = replace_lifs(
                copy.deepcopy(base), lambda lif: sj_node(lif, 'm'),
                membrane_bn_only=membrane_bn)
    return rows


#: Profiler op names (by prefix) of each ``--breakdown`` category; every
#: other op counts as ``rest`` (for the loop and SpikingJelly rows, that is
#: where their neurons and membrane BatchNorms go).
BREAKDOWN = (
    ('conv', ('aten::mkldnn_convolution', 'aten::convolution_backward',
              'aten::_convolution', 'aten::convolution', 'aten::conv',
              'aten::_slow_conv2d', 'aten::slow_conv', 'aten::thnn_conv')),
    ('linear', ('aten::mm', 'aten::addmm', 'aten::bmm', 'aten::linear',
                'aten::matmul')),
    # the fused kernels' autograd Functions, forward and backward (all of
    # the compiled kernel's time; the pure-PyTorch one's own ops count
    # where they are)
    ('neuron kernel', ('LIFMultiStep', )),
)


def op_category(name):
    """The ``--breakdown`` category of the profiler op ``name``."""
    for category, prefixes in BREAKDOWN:
        if name.startswith(prefixes):
            return category
    return 'rest'


def breakdown_ms(fn, make_input):
    """{category: milliseconds of CPU self time} of one forward + backward
    of ``fn`` under the profiler (categories of :data:`BREAKDOWN`, then
    ``rest``)."""
    from torch.profiler import ProfilerActivity, profile
    x = make_input()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        y = fn(x)
        y.backward(torch.ones_like(y))
    parts = dict.fromkeys([name for name, _ in BREAKDOWN] + ['rest'], 0.0)
    for event in prof.key_averages():
        parts[op_category(event.key)] += event.self_cpu_time_total / 1e3
    return parts


def report_breakdown(fns, make_input, results):
    """One profiled step per row of ``results``: the table of
    :func:`breakdown_ms`, and the least ``time/SJ`` a neuron costing
    nothing could reach (the fused row's convolutions and linear layers
    over SpikingJelly's median time)."""
    names = [name for name in results if name in fns]
    parts = {name: breakdown_ms(fns[name], make_input) for name in names}
    columns = list(next(iter(parts.values())))
    print('breakdown of one profiled step (CPU self time, ms):')
    print(f'{"implementation":20s}' + ''.join(f' {c:>13s}' for c in columns)
          + f' {"total":>9s}')
    for name, row in parts.items():
        print(f'{name:20s}' + ''.join(f' {row[c]:13.1f}' for c in columns) +
              f' {sum(row.values()):9.1f}')
    fused, sj = parts.get('bidl fused'), results.get('spikingjelly')
    if fused is not None and sj is not None:
        floor = (fused['conv'] + fused['linear']) / 1e3 / sj[0]
        print(f'(conv + linear of bidl fused) / spikingjelly time: '
              f'{floor:.3f} (time/SJ of a neuron costing nothing)')


def training_step(model, labels):
    """forward + cross-entropy + backward of ``model`` (training mode)."""
    model.train()

    def step(x):
        logits = model(x, mode='tensor')
        return nn.functional.cross_entropy(logits, labels[:logits.shape[0]])
    return step


def config_steps(paths, batch, repeats, device, skip=(), breakdown=False):
    """One table per config: a training step's time and memory kept for
    backward, every row measured in turns in the same run (with
    ``breakdown``, on CPU, then :func:`report_breakdown`)."""
    from mmengine.config import Config
    for path in paths:
        cfg = Config.fromfile(path)
        shape = (config_input_shape(cfg)[0], batch) + \
            config_input_shape(cfg)[1:]
        classes = cfg.model.head.num_classes
        labels = torch.randint(0, classes, (batch, ), device=device)
        rows = config_step_candidates(cfg)
        fns = {name: training_step(model.to(device), labels)
               for name, model in rows.items()}

        def make_input(shape=shape):
            # sparse binary events, as DVS frames are after thresholding
            return (torch.rand(shape, device=device) < 0.1).float(
            ).requires_grad_()

        results = measure_all(fns, make_input, repeats, device, skip)
        report(f'{path}: one training step (F+B), input [T, B, ...] = '
               f'{list(shape)}', results)
        if breakdown and device.type == 'cpu':
            report_breakdown(fns, make_input, results)
        elif breakdown:
            print('--breakdown: CPU only (the profiler sees CPU time)')


# ---------------------------------------------------------------------------
def report(title, results):
    """One row per implementation: time, saved memory and their ratios to
    SpikingJelly and to the pure-PyTorch fused kernel (when they ran)."""
    print(f'\n== {title}')
    bases = [(label, results.get(name)) for label, name in
             (('SJ', 'spikingjelly'), ('torch', 'bidl fused (torch)'),
              ('synBN', 'fused, synaptic BN'), ('floor', 'memory floor'))]
    bases = [(label, base) for label, base in bases if base is not None]
    header = ''.join(f' {"time/" + label:>10s} {"saved/" + label:>11s}'
                     for label, _ in bases)
    print(f'{"implementation":20s} {"time (ms)":>10s} {"saved (MiB)":>12s}'
          f' {"keeps x":>8s}{header}')
    for name, (sec, (saved, keeps)) in results.items():
        ratios = ''
        for _, (base_sec, (base_saved, _)) in bases:
            ratios += f' {sec / base_sec:10.3f}'
            ratios += f' {saved / base_saved:11.3f}' if base_saved else \
                f' {"-":>11s}'
        print(f'{name:20s} {sec * 1e3:10.1f} {saved / 2**20:12.1f} '
              f'{"yes" if keeps else "no":>8s}{ratios}')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--steps', type=int, nargs='*', default=[16, 64],
                        help='T of the LIF-layer tables (none: no table)')
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--channels', type=int, default=128)
    parser.add_argument('--size', type=int, default=32)
    parser.add_argument('--net-steps', type=int, default=16,
                        help='time steps of the network workload; 0 skips it')
    parser.add_argument('--net-batch', type=int, default=16)
    parser.add_argument('--configs', nargs='*', default=[],
                        help='configs of the training-step table (membrane '
                        'BatchNorm): e.g. ' + ' '.join(STEP_CONFIGS))
    parser.add_argument('--config-batch', type=int, default=8)
    parser.add_argument('--breakdown', action='store_true',
                        help='after each config table, where one profiled '
                        'step of each row spends its time (CPU)')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--surrogates', nargs='+', default=['sigmoid'],
                        help='surrogates of extra "bidl fused [name]" rows '
                        '(e.g. rectangle atan triangle fast_sigmoid erf)')
    parser.add_argument('--skip', nargs='*', default=[],
                        help='implementation names to leave out')
    parser.add_argument('--device', default=None,
                        help='cpu or cuda[:i] (default: cuda when available)')
    args = parser.parse_args(argv)
    device = torch.device(args.device or
                          ('cuda' if torch.cuda.is_available() else 'cpu'))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    where = (torch.cuda.get_device_name(device) if device.type == 'cuda'
             else f'CPU, {args.threads} threads')
    print(f'torch {torch.__version__}, {where}')

    for steps in args.steps:
        shape = (steps, args.batch, args.channels, args.size, args.size)

        def make_input(shape=shape):
            return (torch.rand(shape, device=device) * 1.5).requires_grad_()

        results = measure_all(lif_candidates(device, args.surrogates),
                              make_input,
                              args.repeats, device, args.skip)
        report(f'LIF layer, input {list(shape)} float32', results)

    if args.configs:
        config_steps(args.configs, args.config_batch, args.repeats, device,
                     args.skip, args.breakdown)
    if args.net_steps <= 0:
        return
    shape = (args.net_steps, args.net_batch, 2, 32, 32)

    def make_frames():
        return (torch.rand(shape, device=device) > 0.8).float(
        ).requires_grad_()

    results = measure_all(net_candidates(device), make_frames, args.repeats,
                          device, args.skip)
    report(f'conv-LIF net (2-32-64 conv, fc 10), input {list(shape)}',
           results)


if __name__ == '__main__':
    main()
