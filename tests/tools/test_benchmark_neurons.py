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


@pytest.mark.parametrize('name', list(OPTIONS))
def test_spikingjelly_stand_in_equals_the_bidl_loop(name):
    """Outputs, input gradients and BatchNorm running statistics of
    ``sj_node(lif)`` equal the BIDL LIF stepped by its own loop (the same
    random draws for the training noise: both draw one ``randn_like`` per
    step)."""
    lif = LIF(alpha=0.6, theta=0.4, surrogate='sigmoid', backend='loop',
              feature_shape=(3, 4, 4), **OPTIONS[name])
    lif.train()
    bidl = copy.deepcopy(lif)
    sj = BENCH.sj_node(copy.deepcopy(lif))
    sj.train()
    if OPTIONS[name].get('mode') != 'analog' and not OPTIONS[name].get(
            'norm_state') and not OPTIONS[name].get('noise'):
        # SpikingJelly's fused path, not the overridden one-step function
        assert type(sj.node).__name__ == 'LIFNode'
    x = torch.rand(5, 2, 3, 4, 4, dtype=torch.float64) * 1.2 - 0.1
    weight = torch.randn_like(x)
    results = []
    for module in (bidl.double(), sj.double()):
        xx = x.clone().requires_grad_()
        torch.manual_seed(7)
        y = module(xx)
        grad, = torch.autograd.grad((y * weight).sum(), xx)
        norm = module.norm if module is bidl else module.node.norm
        stats = [] if norm is None else [norm.running_mean.clone(),
                                         norm.running_var.clone()]
        results.append([y.detach(), grad] + stats)
    for got, want in zip(results[1], results[0]):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)


def test_every_step_config_has_a_spikingjelly_row():
    """With and without membrane BatchNorm (n_mnist has none), the step
    table has a SpikingJelly row, and it holds no BIDL LIF."""
    from mmengine.config import Config
    for path in ('configs/n_mnist.py', 'configs/dvs_gesture.py'):
        cfg = Config.fromfile(osp.join(REPO, path))
        rows = BENCH.config_step_candidates(cfg)
        assert 'spikingjelly' in rows, path
        assert not any(isinstance(m, LIF)
                       for m in rows['spikingjelly'].modules()), path
        assert any(isinstance(m, LIF) for m in rows['bidl fused'].modules())
        # one training step runs (dvs_gesture's norm_stats='per_step' must
        # leave the stand-in's membrane BatchNorm alone)
        shape = (3, 2) + BENCH.config_input_shape(cfg)[1:]
        labels = torch.zeros(2, dtype=torch.long)
        BENCH.training_step(rows['spikingjelly'], labels)(
            torch.rand(shape)).backward()
