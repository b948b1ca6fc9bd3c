"""ResNetLif's BIDL options: the average-pool projection shortcut
(``shortcut='avgpool_conv'``) and conv biases (``conv_bias=True``).

Checked: the shortcut against a hand composition (including the partial
windows ``ceil_mode`` adds on odd maps), both execution forms, the
state-dict keys of the defaults (old checkpoints), and the TorchScript and
ONNX round trips of the lowering that traces ``compute``.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope

from bidl_train.deploy import deploy
from bidl_train.errors import ConfigError
from bidl_train.models.backbones import BasicBlockLif, ResNetLif
from bidl_train.registry import MODELS

init_default_scope('bidl_train')
T, B = 4, 2
BIDL = dict(shortcut='avgpool_conv', conv_bias=True)


def _randomise_batchnorm(model):
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _steps(model, x_seq):
    state, ys = None, []
    for x_t in x_seq:
        y, state = model.step(x_t, state)
        ys.append(y)
    return torch.stack(ys)


def test_avgpool_shortcut_against_hand_composition():
    """``BN(conv1x1(mean of each 2x2 patch))``; on a 7x7 map the last row
    and column are patches of 2 and 1 pixels, averaged over what they
    have (BIDL's ``AvgPool2d(2, ceil_mode=True)``)."""
    torch.manual_seed(1)
    block = _randomise_batchnorm(BasicBlockLif(3, 5, stride=2, **BIDL))
    pool, conv, bn = block.shortcut
    assert conv.stride == (1, 1) and conv.bias is not None
    x = torch.rand(B, 3, 7, 7)
    patches = torch.stack([torch.stack([
        x[:, :, i:i + 2, j:j + 2].mean((2, 3)) for j in range(0, 7, 2)], -1)
        for i in range(0, 7, 2)], -2)  # slicing clips at the border
    assert patches.shape == (B, 3, 4, 4)
    want = F.batch_norm(F.conv2d(patches, conv.weight, conv.bias),
                        bn.running_mean, bn.running_var, bn.weight, bn.bias,
                        False, 0.0, bn.eps)
    with torch.no_grad():
        torch.testing.assert_close(block.shortcut(x), want)
        # and its output size is the main branch's, so the sum is defined
        assert block(x.expand(T, *x.shape)).shape == (T, B, 5, 4, 4)


def test_defaults_keep_the_old_state_dict_keys():
    keys = set(ResNetLif(18, 2, 'cifar', width=4).state_dict())
    assert 'stages.1.0.shortcut.0.weight' in keys  # the strided conv
    assert 'stages.1.0.shortcut.1.running_mean' in keys  # its BN
    assert not any(k.endswith('.bias') and 'bn' not in k and
                   'shortcut.1' not in k for k in keys), 'conv biases'
    bidl = ResNetLif(18, 2, 'cifar', width=4, **BIDL).state_dict()
    # pool (no parameters), conv with bias, BN
    assert 'stages.1.0.shortcut.1.bias' in bidl
    assert 'stages.1.0.shortcut.2.running_mean' in bidl
    assert {'stem.conv.bias', 'stages.0.0.conv1.bias',
            'stages.3.1.conv2.bias'} <= set(bidl)


def test_bottleneck_width_change_has_no_pool():
    """Stage 0 of a Bottleneck net widens without a stride: BIDL's
    ``AvgPool2d(1)`` is the identity."""
    model = ResNetLif(50, 2, 'cifar', width=4, **BIDL)
    pool = model.stages[0][0].shortcut[0]
    assert isinstance(pool, torch.nn.Identity)
    assert isinstance(model.stages[1][0].shortcut[0], torch.nn.AvgPool2d)


@pytest.mark.parametrize('depth', [10, 50])
def test_single_step_equals_multi_step(depth):
    """18x18 input, cifar stem: maps 18, 9, 5, 3, so two shortcuts pool
    odd maps (partial windows)."""
    torch.manual_seed(0)
    model = _randomise_batchnorm(ResNetLif(depth, 2, 'cifar', width=4,
                                           **BIDL))
    x = (torch.rand(T, B, 2, 18, 18) > 0.5).float()
    with torch.no_grad():
        y = model(x)
        y_steps = _steps(model, x)
    assert (y != 0).any(), 'no activity: the comparison would be vacuous'
    torch.testing.assert_close(y_steps, y, atol=1e-5, rtol=0)


@pytest.mark.parametrize('kwargs, match', [
    (dict(shortcut='pool'), 'shortcut'),
    (dict(conv_bias=1), 'conv_bias'),
])
def test_option_mistakes_raise_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=f'ResNetLif: {match}'):
        ResNetLif(10, **kwargs)


def _run_torchscript(out, names, x):
    init = np.load(out / 'initial_state.npz')
    states = [torch.from_numpy(np.repeat(init[n], x.shape[1], 0)
                               if init[n].ndim else init[n]) for n in names]
    step = torch.jit.load(str(out / 'step.pt'))
    with torch.no_grad():
        for x_t in x:
            outs = step(x_t, *states)
            states = list(outs[1:1 + len(names)])
    return outs[0]


def _run_onnx(out, names, x):
    ort = pytest.importorskip('onnxruntime')
    session = ort.InferenceSession(str(out / 'step.onnx'))
    init = np.load(out / 'initial_state.npz')
    feeds = [np.repeat(init[n], x.shape[1], 0) if init[n].ndim else init[n]
             for n in names]
    for x_t in x.numpy():
        outs = session.run(None, dict(zip(['x'] + names, [x_t] + feeds)))
        feeds = outs[1:1 + len(names)]
    return torch.from_numpy(outs[0])


@pytest.mark.parametrize('target', ['torchscript', 'onnx'])
def test_bidl_shortcut_round_trip(target, tmp_path):
    """The deployed step net (the traced ``compute``) reproduces every
    spike and the logits, odd maps (9 -> 5 -> 3 -> 2) included."""
    if target == 'onnx':
        pytest.importorskip('onnxruntime')
    torch.manual_seed(0)
    model = _randomise_batchnorm(MODELS.build(dict(
        type='SpikingClassifier',
        backbone=dict(type='ResNetLif', depth=10, in_channels=2,
                      stem='cifar', width=4, **BIDL),
        head=dict(type='SpikingClsHead', in_features=32, num_classes=3))))
    x = (torch.rand(3, 2, 2, 9, 9) > 0.5).float()
    with torch.no_grad():
        logits = model(x, mode='tensor')
    report = deploy(model, target, x, str(tmp_path))
    assert report['status'] == 'verified'
    ver = report['verification']
    assert ver['spike_agreement_overall'] == 1.0
    spiking = [v['spikes'] for v in ver['spike_agreement'].values()]
    assert len(spiking) == 9 and sum(spiking) > 0
    run = _run_torchscript if target == 'torchscript' else _run_onnx
    # the deployed step net's last-step output: the head's running mean
    got = run(tmp_path, report['state_names'], x)
    torch.testing.assert_close(got, logits, atol=1e-5, rtol=0)
