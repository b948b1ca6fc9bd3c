"""A Spikformer-style spiking transformer (Zhou et al., ICLR 2023).

Spiking patch splitting (SPS): four ``conv3x3 -> BN -> SN`` stages of
widths ``D/8, D/4, D/2, D``, the last ``pool_stages`` of them followed by a
3x3/2 max-pool on the spikes; then a relative position embedding
``x + SN(BN(conv3x3(x)))``. The map becomes ``L = H' W'`` tokens of width
``D``, kept channel first as ``[N, D, L]``.

Spiking self-attention (SSA), per head of width ``d = D / heads``:

``Q = SN_q(BN(W_q x)), K = SN_k(BN(W_k x)), V = SN_v(BN(W_v x))`` (spikes)
``A = SN_a(scale * Q K^T V)``   (no softmax: spikes are non-negative, the
products are integer counts; ``scale`` keeps the current in range)
``SSA(x) = SN_o(BN(W_o A))``

Block: ``x = x + SSA(x); x = x + MLP(x)`` with
``MLP(x) = SN_2(BN(W_2 SN_1(BN(W_1 x))))`` (hidden width ``mlp_ratio * D``).
The output averages the tokens: ``[T, B, D]``. Every neuron is called
through the execution context, so the single-step form exists (state = the
states of all inner neurons).
"""
from copy import deepcopy

from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.layers import build_neuron
from bidl_train.registry import MODELS
from .stateful import StatefulModule

__all__ = ['SpikingSelfAttention', 'SpikformerBlock', 'Spikformer']


class _ConvBnSn(nn.Module):
    """``conv1d(1x1) -> BN1d -> SN`` on ``[N, C, L]`` tokens."""

    def __init__(self, c_in, c_out, neuron, owner):
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, 1, bias=False)
        self.bn = nn.BatchNorm1d(c_out)
        self.sn = build_neuron(deepcopy(neuron), (c_out, None), owner)

    def run(self, x, ctx, key):
        return ctx.fire(self.sn, key, self.bn(self.conv(x)))


class SpikingSelfAttention(StatefulModule):
    """SSA on ``[N, D, L]`` token spikes (see the module docstring)."""

    def __init__(self, dim, heads=8, scale=0.125, neuron=dict(type='LIF')):
        super().__init__()
        if dim % heads:
            raise ConfigError(f'SpikingSelfAttention: dim {dim} is not '
                              f'divisible by heads {heads}')
        self.heads, self.scale = heads, scale
        self.q = _ConvBnSn(dim, dim, neuron, 'SSA.q')
        self.k = _ConvBnSn(dim, dim, neuron, 'SSA.k')
        self.v = _ConvBnSn(dim, dim, neuron, 'SSA.v')
        self.attn_sn = build_neuron(deepcopy(neuron), (dim, None), 'SSA.attn')
        self.proj = _ConvBnSn(dim, dim, neuron, 'SSA.proj')

    def _split(self, x):
        n, dim, length = x.shape
        return x.reshape(n, self.heads, dim // self.heads,
                         length).transpose(-1, -2)  # [N, h, L, d]

    def compute(self, x, ctx):
        n, dim, length = x.shape
        q = self._split(self.q.run(x, ctx, 'q'))
        k = self._split(self.k.run(x, ctx, 'k'))
        v = self._split(self.v.run(x, ctx, 'v'))
        attn = (q @ k.transpose(-1, -2)) * self.scale  # [N, h, L, L]
        out = (attn @ v).transpose(-1, -2).reshape(n, dim, length)
        out = ctx.fire(self.attn_sn, 'attn_sn', out)
        return self.proj.run(out, ctx, 'proj')


class SpikformerBlock(StatefulModule):
    """``x + SSA(x)`` then ``x + MLP(x)``."""

    def __init__(self, dim, heads=8, mlp_ratio=4, neuron=dict(type='LIF')):
        super().__init__()
        self.attn = SpikingSelfAttention(dim, heads, neuron=neuron)
        hidden = int(dim * mlp_ratio)
        self.fc1 = _ConvBnSn(dim, hidden, neuron, 'MLP.fc1')
        self.fc2 = _ConvBnSn(hidden, dim, neuron, 'MLP.fc2')

    def compute(self, x, ctx):
        x = x + self.attn.compute(x, ctx.scope('attn'))
        return x + self.fc2.run(self.fc1.run(x, ctx, 'fc1'), ctx, 'fc2')


@MODELS.register_module()
class Spikformer(StatefulModule):
    """``[T, B, C, H, W] -> [T, B, dim]``.

    Args:
        in_channels (int): input channels.
        dim (int): token width D (divisible by 8 and by ``heads``).
        depth (int): number of transformer blocks.
        heads (int): attention heads.
        mlp_ratio (float): MLP hidden width / D.
        pool_stages (int): how many of the 4 SPS stages halve the
            resolution (2 for 32x32 inputs, 4 for 128x128).
        neuron (dict): neuron config of every spiking activation.
    """

    def __init__(self, in_channels=2, dim=256, depth=2, heads=8, mlp_ratio=4,
                 pool_stages=2, neuron=dict(type='LIF')):
        super().__init__()
        if dim % 8:
            raise ConfigError(f'Spikformer: dim must be divisible by 8, got '
                              f'{dim}')
        if not 0 <= pool_stages <= 4:
            raise ConfigError(f'Spikformer: pool_stages must lie in 0..4, got '
                              f'{pool_stages}')
        widths = [dim // 8, dim // 4, dim // 2, dim]
        self.convs, self.bns, self.sns, self.pools = (nn.ModuleList(),
                                                      nn.ModuleList(),
                                                      nn.ModuleList(), [])
        c_in = in_channels
        for i, width in enumerate(widths):
            self.convs.append(nn.Conv2d(c_in, width, 3, padding=1,
                                        bias=False))
            self.bns.append(nn.BatchNorm2d(width))
            self.sns.append(build_neuron(deepcopy(neuron),
                                         (width, None, None),
                                         f'Spikformer.sps{i}'))
            self.pools.append(i >= 4 - pool_stages)
            c_in = width
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.rpe_conv = nn.Conv2d(dim, dim, 3, padding=1, bias=False)
        self.rpe_bn = nn.BatchNorm2d(dim)
        self.rpe_sn = build_neuron(deepcopy(neuron), (dim, None, None),
                                   'Spikformer.rpe')
        self.blocks = nn.ModuleList(
            SpikformerBlock(dim, heads, mlp_ratio, neuron)
            for _ in range(depth))
        self.out_features = dim

    def compute(self, x, ctx):
        for i, (conv, bn, sn) in enumerate(zip(self.convs, self.bns,
                                               self.sns)):
            x = ctx.fire(sn, f'sps{i}', bn(conv(x)))
            if self.pools[i]:
                x = self.pool(x)
        x = x + ctx.fire(self.rpe_sn, 'rpe', self.rpe_bn(self.rpe_conv(x)))
        x = x.flatten(2)  # [N, D, L]
        for i, block in enumerate(self.blocks):
            x = block.compute(x, ctx.scope(f'blocks.{i}'))
        return x.mean(-1)
