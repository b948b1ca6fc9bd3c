"""Model-zoo backbones: shapes, both execution forms, residual maths, text
padding."""
import pytest
import torch
import torch.nn.functional as F

from bidl_train.errors import ConfigError
from bidl_train.models.backbones import (BasicBlockLif, ConvLifNet,
                                         FastTextLif, PLIFNet, ResNetLif,
                                         SEWBlock, SEWResNet, Spikformer,
                                         VGGLif)

T, B = 4, 2


def _reference_lif(x_seq, alpha=0.3, theta=0.5):
    """BIDL LIF written out: u = x + v; s = u > theta; v = alpha*(1-s)*u."""
    v, out = torch.zeros_like(x_seq[0]), []
    for x in x_seq:
        u = x + v
        s = (u > theta).float()
        v = alpha * (1 - s) * u
        out.append(s)
    return torch.stack(out)


def _warm(model, x):
    """Running statistics = the batch statistics (cumulative average), so
    the eval-mode network stays as active as in training; then eval mode."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None
            m.reset_running_stats()
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(x)
    return model.eval()


def _steps(model, x_seq):
    state, ys = None, []
    for x_t in x_seq:
        y, state = model.step(x_t, state)
        ys.append(y)
    return torch.stack(ys), state


CASES = [
    (lambda: ResNetLif(10, 2, 'cifar', width=8), (2, 16, 16), 64),
    (lambda: ResNetLif(18, 2, 'cifar', width=8, lite=True), (2, 16, 16),
     64),
    (lambda: ResNetLif(34, 3, 'imagenet', width=4), (3, 32, 32), 32),
    (lambda: ResNetLif(50, 3, 'imagenet', width=4), (3, 32, 32), 128),
    (lambda: SEWResNet(18, 2, 'ADD', width=8), (2, 16, 16), 64),
    (lambda: SEWResNet(10, 2, 'IAND', width=8), (2, 16, 16), 64),
    (lambda: Spikformer(2, dim=32, depth=2, heads=4), (2, 16, 16), 32),
    (lambda: VGGLif('vgg11', 2, 32, fc=(16, )), (2, 32, 32), 16),
    (lambda: PLIFNet('cifar10_dvs', input_size=32, channels=8, fc=16,
                     neuron=dict(type='LIF', learnable=('alpha', ))),
     (2, 32, 32), 16),
    (lambda: ConvLifNet(2, 40, (8, 16, 16), (None, None, None), strides=2,
                        input_norm=True, fc=(32, )), (2, 40, 40), 32),
    (lambda: ConvLifNet(2, 64, (4, 8), (2, 2), kernel_size=(5, 3),
                        strides=(2, 1), fc=(16, 8), fc_type='relu'),
     (2, 64, 64), 8),
]


@pytest.mark.parametrize('make,shape,features', CASES)
def test_shapes_and_single_step_equals_multi_step(make, shape, features):
    torch.manual_seed(0)
    model = make()
    x = torch.rand(T, B, *shape) * 3
    model = _warm(model, x)
    with torch.no_grad():
        y = model(x)
        y_steps, _ = _steps(model, x)
    assert y.shape == (T, B, features)
    assert model.out_features == features
    assert (y != 0).any(), 'no activity: the comparison would be vacuous'
    torch.testing.assert_close(y_steps, y, atol=1e-5, rtol=0)


def test_basic_block_against_hand_composition():
    torch.manual_seed(1)
    block = BasicBlockLif(4, 8, stride=2).eval()
    for bn in (block.bn1, block.bn2, block.shortcut[1]):
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
    x = (torch.rand(T, B, 4, 8, 8) > 0.6).float()

    def bn(t, m):
        return F.batch_norm(t, m.running_mean, m.running_var, m.weight,
                            m.bias, False, 0.0, m.eps)

    flat = x.flatten(0, 1)
    h = bn(F.conv2d(flat, block.conv1.weight, stride=2, padding=1),
           block.bn1)
    s1 = _reference_lif(h.unflatten(0, (T, B))).flatten(0, 1)
    main = bn(F.conv2d(s1, block.conv2.weight, padding=1), block.bn2)
    skip = bn(F.conv2d(flat, block.shortcut[0].weight, stride=2),
              block.shortcut[1])
    expected = _reference_lif((main + skip).unflatten(0, (T, B)))
    with torch.no_grad():
        got = block(x)
        got_steps, state = _steps(block, x)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got_steps, expected)
    assert set(state) == {'sn1', 'sn2'}


@pytest.mark.parametrize('cnf', ['ADD', 'AND', 'IAND'])
def test_sew_identity_block_connect_function(cnf):
    torch.manual_seed(2)
    block = SEWBlock(4, 4, cnf=cnf).eval()
    x = (torch.rand(T, B, 4, 6, 6) > 0.5).float()
    with torch.no_grad():
        a = _reference_lif(block.bn2(block.conv2(
            _reference_lif(block.bn1(block.conv1(x.flatten(0, 1))).unflatten(
                0, (T, B))).flatten(0, 1))).unflatten(0, (T, B)))
        expected = {'ADD': a + x, 'AND': a * x, 'IAND': (1 - a) * x}[cnf]
        torch.testing.assert_close(block(x), expected)


def test_text_padding_leaves_neuron_states_unchanged():
    torch.manual_seed(3)
    model = FastTextLif(vocab_size=30, embedding_dim=4, hidden_dim=6).eval()
    with torch.no_grad():
        model.linear.bias.fill_(0.7)  # would drive the neurons if unmasked
    tokens = torch.randint(1, 30, (5, B))
    padded = torch.cat([torch.zeros(3, B, dtype=torch.long), tokens])
    with torch.no_grad():
        y_pad = model(padded)
        y = model(tokens)
        state = None
        for t in range(3):  # the padded steps alone
            out, state = model.step(padded[t], state)
            assert (out == 0).all()
            assert (state['neuron']['v'] == 0).all()
        _, state_pad = _steps(model, padded)
        _, state_plain = _steps(model, tokens)
    assert (y_pad[:3] == 0).all()
    torch.testing.assert_close(y_pad[3:], y)
    torch.testing.assert_close(state_pad['neuron']['v'],
                               state_plain['neuron']['v'])
    # without the mask the bias alone would have made the neurons fire
    assert (_reference_lif(torch.full((3, B, 6), 0.7)) != 0).any()


def test_text_backbone_refuses_bad_ids():
    model = FastTextLif(vocab_size=10, embedding_dim=4, hidden_dim=6)
    with pytest.raises(ConfigError, match='vocab_size'):
        model(torch.full((3, B), 12, dtype=torch.long))
    with pytest.raises(ConfigError, match='integer token ids'):
        model(torch.rand(3, B))


@pytest.mark.parametrize('make,match', [
    (lambda: ResNetLif(depth=20), 'depth'),
    (lambda: ResNetLif(stem='tiny'), 'stem'),
    (lambda: SEWResNet(cnf='OR'), 'cnf'),
    (lambda: Spikformer(dim=36), 'divisible'),
    (lambda: VGGLif(arch=['M', 64]), 'M'),
    (lambda: PLIFNet(preset='imagenet'), 'preset'),
    (lambda: ConvLifNet(channels=(8, 8), pools=(2, 2), strides=(1, 2, 2)),
     'strides'),
    (lambda: ConvLifNet(fc_type='tanh'), 'fc_type'),
])
def test_config_mistakes_raise_config_error(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_imdb_delay_recipe_trains_one_step_through_spikes():
    """configs/zoo/imdb_delay_bilif.py builds; one forward/backward on two
    padded reviews; what reaches the readout is binary spikes."""
    import os.path as osp

    from mmengine.config import Config

    from bidl_train.registry import MODELS
    from helpers.paths import REPO
    cfg = Config.fromfile(osp.join(REPO, 'configs/zoo/imdb_delay_bilif.py'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).train()
    tokens = torch.randint(1, cfg.model.backbone.vocab_size, (6, 2))
    tokens[:3, 0] = 0  # a shorter review, padded in front
    feats = model.backbone(tokens)
    assert feats.shape[-1] == cfg.model.head.in_features
    assert set(feats.unique().tolist()) <= {0.0, 1.0}
    loss = model(tokens, dict(label=torch.tensor([0, 1])), mode='loss')
    loss['loss'].backward()
    grads = model.backbone.embedding.weight.grad
    assert grads is not None and torch.isfinite(grads).all()
    assert grads[1:].abs().sum() > 0  # the surrogate carried it to words


def test_n_mnist_soft_lif_recipe_trains_one_step_through_spikes():
    """configs/zoo/n_mnist_soft_lif.py builds; one forward/backward on
    two tiny event-frame samples; every layer spikes (binary outputs), its
    neurons use the soft reset the recipe chose, and the gradient reaches
    the first convolution."""
    import os.path as osp

    from mmengine.config import Config

    from bidl_train.layers import Conv2dLif
    from bidl_train.neurons import LIF
    from bidl_train.registry import MODELS
    from helpers.paths import REPO
    cfg = Config.fromfile(osp.join(REPO,
                                   'configs/zoo/n_mnist_soft_lif.py'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).train()
    neurons = [m for m in model.modules() if isinstance(m, LIF)]
    assert len(neurons) == 3  # two conv layers and one FC layer
    assert all(n.reset == 'soft' and n.mode == 'spike' for n in neurons)
    frames = torch.poisson(torch.full((3, 2, 2, 34, 34), 0.3))  # [T,B,C,H,W]
    feats = model.backbone(frames)
    assert feats.shape == (3, 2, cfg.model.head.in_features)
    assert set(feats.unique().tolist()) <= {0.0, 1.0}
    logits = model(frames)
    assert logits.shape == (2, 10)
    loss = model(frames, dict(label=torch.tensor([3, 7])), mode='loss')
    loss['loss'].backward()
    first = next(m for m in model.modules() if isinstance(m, Conv2dLif))
    grad = first.conv.weight.grad
    assert grad is not None and torch.isfinite(grad).all()
    assert grad.abs().sum() > 0


def test_n_mnist_soft_lif_8e_recipe_is_soft_lif_trained_longer():
    """configs/zoo/n_mnist_soft_lif_8e.py keeps soft_lif's network and
    optimizer; only the schedule changes: warm-up for one epoch of the
    4,000-digit split at batch 32 (ceil(4000 / 32) = 125 iterations), then a
    cosine that reaches its floor at the last of 8 epochs."""
    import os.path as osp

    from mmengine.config import Config

    from helpers.paths import REPO
    short = Config.fromfile(osp.join(REPO,
                                     'configs/zoo/n_mnist_soft_lif.py'))
    long = Config.fromfile(osp.join(REPO,
                                    'configs/zoo/n_mnist_soft_lif_8e.py'))
    assert long.model == short.model
    assert long.optim_wrapper == short.optim_wrapper
    assert long.train_dataloader.batch_size == 32
    assert long.train_cfg.max_epochs == 8
    warm_up, cosine = long.param_scheduler
    assert (warm_up.type, warm_up.by_epoch, warm_up.end) == ('LinearLR',
                                                             False, 125)
    assert (cosine.type, cosine.by_epoch) == ('CosineAnnealingLR', True)
    assert (cosine.T_max, cosine.eta_min) == (8, 0)
