"""The default N-MNIST model exports to NIR spike for spike.

``configs/n_mnist.py`` is documented as lying in the subset NIR expresses
exactly (shared/NIR.md). This builds the config's own model, gives it
realistic spiking (BatchNorm statistics and FC weight scales calibrated on
N-MNIST-layout event frames, so every layer fires at 5-30 %), exports it with
the ``nir`` target and runs the written file in snnTorch's and Norse's
importers: every spike of every layer and the logits must equal PyTorch's.
"""
import os.path as osp

import pytest
import torch
from helpers.deploy_runner import logits_and_spikes
from mmengine.config import Config
from mmengine.registry import init_default_scope

from bidl_train.deploy import deploy
from bidl_train.layers import FcLif
from bidl_train.registry import MODELS
from helpers.paths import REPO

nir = pytest.importorskip('nir')
init_default_scope('bidl_train')

CONFIG = osp.join(REPO, 'configs', 'n_mnist.py')


def _nmnist_frames(T=10, B=2, seed=0):
    """``[T, B, 2, 34, 34]`` event-count frames in N-MNIST's layout.

    A stroke pattern (a stand-in digit) moves along a saccade-like path;
    both polarities fire Poisson counts on it plus sparse background noise,
    as the sensor's ON/OFF events do.
    """
    gen = torch.Generator().manual_seed(seed)
    pattern = torch.zeros(B, 26, 26)
    for b in range(B):
        for _ in range(4):
            r, c = torch.randint(0, 20, (2, ), generator=gen).tolist()
            if torch.rand(1, generator=gen) > 0.5:
                pattern[b, r, c:c + 6] = 1
            else:
                pattern[b, r:r + 6, c] = 1
    frames = torch.zeros(T, B, 2, 34, 34)
    for t in range(T):
        dy, dx = (3 * t) % 8, (5 * t) % 8
        rate = torch.zeros(B, 34, 34)
        rate[:, dy:dy + 26, dx:dx + 26] = 2.0 * pattern
        for p in range(2):
            noise = (torch.rand(B, 34, 34, generator=gen) > 0.99).float()
            frames[t, :, p] = torch.poisson(rate, generator=gen) + noise
    return frames


def _calibrated_model(x):
    """The config's model with spiking in every layer.

    Random weights leave the deep layers silent, which would make "spikes
    match" vacuous. BatchNorm running statistics are set to the batch's
    (as training would), and each FC layer's weights are scaled so that its
    synaptic current has unit spread over the batch.
    """
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(CONFIG).model)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # cumulative average: the batch's stats
            module.reset_running_stats()
    model.train()
    with torch.no_grad():
        model(x, mode='tensor')
    model.eval()
    for module in model.modules():
        if isinstance(module, FcLif):
            seen = {}
            handle = module.linear.register_forward_hook(
                lambda m, i, out: seen.__setitem__('out', out))
            with torch.no_grad():
                model(x, mode='tensor')
            handle.remove()
            spread = seen['out'].std()
            module.linear.weight.data /= spread
            module.linear.bias.data /= spread
    return model


def _lif_keys(graph):
    """NIR LIF node keys in the order the chain visits them."""
    succ, keys, key = dict(graph.edges), [], None
    key = succ['input']
    while key != 'output':
        if isinstance(graph.nodes[key], nir.LIF):
            keys.append(key)
        key = succ[key]
    return keys


def _run_imported(make_net, run_step, graph, x, b):
    """Per-layer spikes ``{key: [T, ...]}`` and logits of one sample."""
    net = make_net(graph)
    modules = dict(net.named_modules())
    record = {key: [] for key in _lif_keys(graph)}
    handles = [modules[key].register_forward_hook(
        lambda m, i, out, key=key: record[key].append(
            (out[0] if isinstance(out, tuple) else out).detach().clone()))
        for key in record]
    state, outs = None, []
    with torch.no_grad():
        for t in range(x.shape[0]):
            out, state = run_step(net, x[t, b], state)
            outs.append(out.reshape(-1))
    for handle in handles:
        handle.remove()
    return ({key: torch.stack(v) for key, v in record.items()},
            torch.stack(outs).mean(0))


def _snntorch():
    import_nir = pytest.importorskip('snntorch.import_nir')
    import snntorch.utils as sutils

    def make(graph):
        net = import_nir.import_from_nir(graph)
        sutils.reset(net)
        return net

    def run(net, x_t, state):
        out = net(x_t)
        return (out[0] if isinstance(out, tuple) else out), None
    return make, run


def _norse():
    norse_torch = pytest.importorskip('norse.torch')

    def make(graph):
        return norse_torch.from_nir(graph, dt=1e-4)  # the export's dt

    def run(net, x_t, state):
        return net(x_t, state)
    return make, run


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    x = _nmnist_frames()
    model = _calibrated_model(x)
    logits, spikes = logits_and_spikes(model, x)
    out = tmp_path_factory.mktemp('n_mnist_nir')
    report = deploy(model, 'nir', x, str(out))
    return x, logits, spikes, report, nir.read(str(out / 'model.nir'))


def test_n_mnist_model_spikes_in_every_layer(exported):
    _, _, spikes, report, _ = exported
    assert len(spikes) == 5  # 3 conv-LIF + 2 FC-LIF layers
    for name, s in spikes.items():
        assert 0.01 < float(s.mean()) < 0.5, name
    # the exporter's own runtime agrees too (it reads only the file)
    assert report['status'] == 'verified'
    assert report['verification']['spike_agreement_overall'] == 1.0


@pytest.mark.parametrize('importer', ['snntorch', 'norse'])
def test_n_mnist_nir_import_reproduces_spikes(exported, importer):
    x, logits, spikes, _, graph = exported
    make, run = _snntorch() if importer == 'snntorch' else _norse()
    keys = _lif_keys(graph)
    assert len(keys) == len(spikes)
    for b in range(x.shape[1]):  # a Flatten after a conv: unbatched samples
        got, got_logits = _run_imported(make, run, graph, x, b)
        for key, (name, want) in zip(keys, spikes.items()):
            assert torch.equal(got[key].reshape(want[:, b].shape),
                               want[:, b]), f'{importer}: {name}'
        torch.testing.assert_close(got_logits, logits[b], atol=1e-5, rtol=0)
