"""tools/benchmark_neurons.py: SpikingJelly's stand-ins for BIDL LIFs in the
training-step tables compute what the BIDL neuron computes (else the
``time/SJ`` ratios would compare different models), and every config of
the step table gets a SpikingJelly row."""
import copy
import importlib.util
import os.path as osp

import pytest
import torch

from bidl_train.neurons import LIF
from helpers.paths import REPO

pytest.importorskip('spikingjelly')


def load_benchmark():
    path = osp.join(REPO, 'tools', 'benchmark_neurons.py')
    spec = importlib.util.spec_from_file_location('benchmark_neurons', path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


BENCH = load_benchmark()
OPTIONS = {
    # the plain spiking LIF: SpikingJelly's own fused multi-step node
    'spike': dict(),
    'soft reset': dict(reset='soft'),
    'membrane BN': dict(norm_state=True),
    'analog u': dict(mode='analog', memb_mode=0),
    'analog u - theta': dict(mode='analog', memb_mode=1, act=None),
    'analog r': dict(mode='analog', memb_mode=2),
    'analog v': dict(mode='analog', memb_mode=3, act=None),
    'training noise': dict(mode='analog', noise=0.05),
    'noise, membrane BN, spike': dict(noise=0.1, norm_state=True),
}


#: The SpikingJelly node the stand-in must be for each option: its own
#: fused LIF, its own membrane-BatchNorm neuron (MPBN), or LIFNode stepped
#: with BIDL's extras where SpikingJelly has no such neuron.
NODE_TYPES = {'spike': 'LIFNode', 'soft reset': 'LIFNode',
              'membrane BN': 'MPBNLIFNode'}


def membrane_norm(node):
    """The BatchNorm a SpikingJelly stand-in's node applies (None: none)."""
    return (node.vbn if hasattr(node, 'vbn') else
            getattr(node, 'norm', None))


@pytest.mark.parametrize('step_mode', ['s', 'm'])
@pytest.mark.parametrize('name', list(OPTIONS))
def test_spikingjelly_stand_in_equals_the_bidl_loop(name, step_mode):
    """Outputs, input gradients and BatchNorm running statistics of
    ``sj_node(lif)`` equal the BIDL LIF stepped by its own loop (the same
    random draws for the training noise: both draw one ``randn_like`` per
    step), stepped either way."""
    lif = LIF(alpha=0.6, theta=0.4, surrogate='sigmoid', backend='loop',
              feature_shape=(3, 4, 4), **OPTIONS[name])
    lif.train()
    bidl = copy.deepcopy(lif)
    sj = BENCH.sj_node(copy.deepcopy(lif), step_mode)
    sj.train()
    assert type(sj.node).__name__ == NODE_TYPES.get(name, 'BIDLExtrasLIFNode')
    x = torch.rand(5, 2, 3, 4, 4, dtype=torch.float64) * 1.2 - 0.1
    weight = torch.randn_like(x)
    results = []
    for module in (bidl.double(), sj.double()):
        xx = x.clone().requires_grad_()
        torch.manual_seed(7)
        y = module(xx)
        grad, = torch.autograd.grad((y * weight).sum(), xx)
        norm = module.norm if module is bidl else membrane_norm(module.node)
        stats = [] if norm is None else [norm.running_mean.clone(),
                                         norm.running_var.clone(),
                                         norm.num_batches_tracked.clone()]
        results.append([y.detach(), grad] + stats)
    for got, want in zip(results[1], results[0]):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)


def test_spikingjelly_mpbn_needs_bidls_charge():
    """MPBNLIFNode charges towards v_reset and has no beta: with v0 != 0
    or beta != 0 the stand-in is the LIFNode with BIDL's extras (still
    equal to the loop, by the test above's check)."""
    for extra in (dict(v0=0.1), dict(beta=0.05)):
        lif = LIF(alpha=0.6, theta=0.4, surrogate='sigmoid', backend='loop',
                  feature_shape=(3, 4, 4), norm_state=True, **extra)
        sj = BENCH.sj_node(copy.deepcopy(lif))
        assert type(sj.node).__name__ == 'BIDLExtrasLIFNode', extra
        x = torch.rand(4, 2, 3, 4, 4, dtype=torch.float64)
        torch.testing.assert_close(sj.double()(x), lif.double()(x))


def graph_node_names(tensor):
    """Names of every autograd node behind ``tensor``."""
    names, todo, seen = [], [tensor.grad_fn], set()
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        names.append(type(fn).__name__)
        todo.extend(next_fn for next_fn, _ in fn.next_functions)
    return names


def test_spikingjelly_single_step_row_slices_time_by_unbind():
    """The default (fair) stand-in steps over T by iterating the sequence:
    one ``UnbindBackward`` for all steps, no per-step ``SelectBackward``
    (whose backward writes a zero-filled full-sequence gradient each step,
    O(T^2)); SpikingJelly's own multi-step loop indexes ``x[t]``."""
    lif = LIF(alpha=0.6, theta=0.4, surrogate='sigmoid', backend='loop',
              feature_shape=(3, 4, 4), norm_state=True)
    x = torch.rand(6, 2, 3, 4, 4, requires_grad=True)
    fair = graph_node_names(BENCH.sj_node(copy.deepcopy(lif))(x))
    assert fair.count('UnbindBackward0') == 1
    assert 'SelectBackward0' not in fair
    multi = graph_node_names(BENCH.sj_node(copy.deepcopy(lif), 'm')(x))
    assert multi.count('SelectBackward0') == 6


def test_every_step_config_has_a_spikingjelly_row():
    """With and without membrane BatchNorm (n_mnist has none), the step
    table has a SpikingJelly row, and it holds no BIDL LIF."""
    from mmengine.config import Config
    for path in ('configs/n_mnist.py', 'configs/dvs_gesture.py'):
        cfg = Config.fromfile(osp.join(REPO, path))
        rows = BENCH.config_step_candidates(cfg)
        assert 'spikingjelly' in rows, path
        # with membrane BatchNorm: SpikingJelly's own MPBN neuron, stepped
        # both ways; n_mnist's plain LIFs: SpikingJelly's fused LIFNode
        nodes = {type(m).__name__ for m in rows['spikingjelly'].modules()
                 if type(m).__name__.endswith('Node')}
        want = {'MPBNLIFNode'} if 'gesture' in path else {'LIFNode'}
        assert nodes == want, (path, nodes)
        assert ('spikingjelly (m)' in rows) == ('gesture' in path), path
        assert not any(isinstance(m, LIF)
                       for m in rows['spikingjelly'].modules()), path
        assert any(isinstance(m, LIF) for m in rows['bidl fused'].modules())
        # one training step runs (dvs_gesture's norm_stats='per_step' must
        # leave the stand-in's membrane BatchNorm alone)
        shape = (3, 2) + BENCH.config_input_shape(cfg)[1:]
        labels = torch.zeros(2, dtype=torch.long)
        BENCH.training_step(rows['spikingjelly'], labels)(
            torch.rand(shape)).backward()


def test_breakdown_categories():
    """Profiler op names map to the --breakdown categories."""
    for name, want in (('aten::mkldnn_convolution', 'conv'),
                       ('aten::convolution_backward', 'conv'),
                       ('aten::addmm', 'linear'), ('aten::mm', 'linear'),
                       ('LIFMultiStepBNCpp', 'neuron kernel'),
                       ('LIFMultiStepBNCppBackward', 'neuron kernel'),
                       ('aten::add', 'rest'),
                       ('aten::native_batch_norm', 'rest')):
        assert BENCH.op_category(name) == want, name


def test_breakdown_of_a_small_step_sees_every_part():
    """A conv, a fused LIF with membrane BatchNorm and a linear layer:
    each category, in order, gets time."""
    from torch import nn
    conv = nn.Conv2d(2, 4, 3, padding=1)
    lif = LIF(alpha=0.5, theta=0.3, surrogate='sigmoid', backend='fused',
              feature_shape=(4, 6, 6), norm_state=True)
    fc = nn.Linear(4 * 6 * 6, 3)

    def step(x):
        h = conv(x.flatten(0, 1)).unflatten(0, x.shape[:2])
        return fc(lif(h).flatten(2)).mean()

    parts = BENCH.breakdown_ms(step, lambda: torch.rand(4, 2, 2, 6, 6))
    assert list(parts) == ['conv', 'linear', 'neuron kernel', 'rest']
    assert all(value > 0 for value in parts.values()), parts
