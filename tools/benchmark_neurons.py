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
is the fused kernel as the library picks it (the compiled C++ kernel when it
builds), ``bidl fused (torch)`` the pure-PyTorch fused kernel every machine
has, ``bidl loop`` the plain autograd loop. All neurons use
the same dynamics (alpha = 1 - 1/tau = 0.5, theta = 1, hard reset to 0) and
the sigmoid surrogate (alpha = 4).

Usage::

    python tools/benchmark_neurons.py                 # the full default set
    python tools/benchmark_neurons.py --steps 16 --batch 8 --repeats 2
"""
import argparse
import statistics
import time

import torch
from torch import nn

from bidl_train.layers import Aggregation, Conv2dLif, FcLif, SpikingSequential
from bidl_train.neurons import LIF

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


def run_once(fn, make_input):
    """(seconds of one forward+backward, (bytes saved for backward, whether
    the input is kept))."""
    x = make_input()
    start = time.perf_counter()
    saved, keeps_input, y = saved_bytes_and_output(fn, x)
    y.backward(torch.ones_like(y))
    return time.perf_counter() - start, (saved, keeps_input)


def measure_all(candidates, make_input, repeats, skip=()):
    """{name: (median seconds, (saved bytes, keeps input))}, in turns."""
    names = [n for n in candidates if n not in skip]
    times = {n: [] for n in names}
    saved = {}
    for i in range(repeats + 1):
        for name in names:
            elapsed, saved[name] = run_once(candidates[name], make_input)
            if i:  # the first round warms up allocators and caches
                times[name].append(elapsed)
    return {n: (statistics.median(times[n]), saved[n]) for n in names}


# ---------------------------------------------------------------------------
# Single LIF layer
# ---------------------------------------------------------------------------
def lif_candidates():
    cands = {
        'bidl fused': LIF(alpha=ALPHA, theta=THETA, surrogate='sigmoid',
                          backend='fused'),
        'bidl fused (torch)': LIF(alpha=ALPHA, theta=THETA,
                                  surrogate='sigmoid', backend='fused',
                                  kernel='torch'),
        'bidl loop': LIF(alpha=ALPHA, theta=THETA, surrogate='sigmoid',
                         backend='loop'),
    }
    try:
        from spikingjelly.activation_based import neuron, surrogate
        sj = neuron.LIFNode(tau=TAU, decay_input=False, v_threshold=THETA,
                            v_reset=0.0, step_mode='m',
                            surrogate_function=surrogate.Sigmoid(alpha=4.0))

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
                               spike_grad=snn_surrogate.sigmoid(slope=4))

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
            tau_mem_inv=torch.tensor(1.0 / TAU), v_th=torch.tensor(THETA)))

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
def bidl_net(backend):
    neuron = dict(type='LIF', alpha=ALPHA, theta=THETA, surrogate='sigmoid',
                  backend=backend)
    return SpikingSequential(
        Conv2dLif(2, 32, pool=2, neuron=neuron),
        Conv2dLif(32, 64, pool=2, neuron=neuron),
        nn.Flatten(),
        FcLif(64 * 8 * 8, 10, neuron=neuron),
        Aggregation('mean'))


def net_candidates():
    cands = {'bidl fused': bidl_net('fused'), 'bidl loop': bidl_net('loop')}
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
            node())

        def run_sj(x, net=sj):
            functional.reset_net(net)
            return net(x).mean(0)

        cands['spikingjelly'] = run_sj
    except ImportError:
        pass
    return cands


# ---------------------------------------------------------------------------
def report(title, results):
    print(f'\n== {title}')
    base = results.get('spikingjelly')
    print(f'{"implementation":20s} {"time (ms)":>10s} {"saved (MiB)":>12s}'
          f' {"keeps x":>8s} {"time/SJ":>8s} {"saved/SJ":>9s}')
    for name, (sec, (saved, keeps)) in results.items():
        ratio_t = f'{sec / base[0]:8.3f}' if base else '       -'
        ratio_m = f'{saved / base[1][0]:9.3f}' if base and base[1][0] else \
            '        -'
        print(f'{name:20s} {sec * 1e3:10.1f} {saved / 2**20:12.1f} '
              f'{"yes" if keeps else "no":>8s} {ratio_t} {ratio_m}')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--steps', type=int, nargs='+', default=[16, 64])
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--channels', type=int, default=128)
    parser.add_argument('--size', type=int, default=32)
    parser.add_argument('--net-steps', type=int, default=16)
    parser.add_argument('--net-batch', type=int, default=16)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--skip', nargs='*', default=[],
                        help='implementation names to leave out')
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f'torch {torch.__version__}, {args.threads} threads')

    for steps in args.steps:
        shape = (steps, args.batch, args.channels, args.size, args.size)

        def make_input(shape=shape):
            return (torch.rand(shape) * 1.5).requires_grad_()

        results = measure_all(lif_candidates(), make_input, args.repeats,
                              args.skip)
        report(f'LIF layer, input {list(shape)} float32', results)

    shape = (args.net_steps, args.net_batch, 2, 32, 32)

    def make_frames():
        return (torch.rand(shape) > 0.8).float().requires_grad_()

    results = measure_all(net_candidates(), make_frames, args.repeats,
                          args.skip)
    report(f'conv-LIF net (2-32-64 conv, fc 10), input {list(shape)}',
           results)


if __name__ == '__main__':
    main()
