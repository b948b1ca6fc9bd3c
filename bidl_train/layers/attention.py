"""Temporal attention layers: TA (Yao et al. 2021) and TCJA (Zhu et al. 2022).

Both weigh the ``T`` steps of a ``[T, B, C, ...]`` tensor with scores computed
from the *whole* sequence, so a score at step ``t`` depends on later steps.
There is no causal single-step form: :meth:`step` raises
:class:`~bidl_train.errors.ConfigError` (and so does
:meth:`SpikingSequential.step` of a chain holding one), while the multi-step
``forward`` is the layer.

**TA** (temporal-wise attention; M. Yao et al., "Temporal-wise Attention
Spiking Neural Networks for Event Streams Classification", ICCV 2021), with
``X`` of shape ``[T, B, ...]``:

    z[b, t]   = mean over every non-(T, B) dim of X[t, b]       (squeeze)
    d[b, :]   = sigmoid(W2 relu(W1 z[b, :]))                    (excitation)
    Y[t, b]   = d[b, t] * X[t, b]

``W1``: ``T -> T // reduction``, ``W2``: ``T // reduction -> T``, no biases
(as in BIDL). With ``pooling='avg+max'`` the excitation is
``sigmoid(MLP(z_avg) + MLP(z_max))`` with the same MLP (SpikingJelly's
variant).

**TCJA** (temporal-channel joint attention; R.-J. Zhu et al., "TCJA-SNN:
Temporal-Channel Joint Attention for Spiking Neural Networks", 2022), with
``X`` of shape ``[T, B, C, ...]``:

    Z[b, t, c] = mean over the spatial dims of X[t, b, c]
    A = conv_t(Z)          Conv1d over Z[b] as T input channels sliding
                           along C (kernel ``kernel_size_t``)
    B = conv_c(Z^T)        Conv1d over Z[b]^T as C input channels sliding
                           along T (kernel ``kernel_size_c``)
    F[b, t, c] = sigmoid(A[b, t, c] * B[b, c, t])               (fusion)
    Y[t, b, c] = F[b, t, c] * X[t, b, c]

Both convolutions are bias-free and keep the length (``'same'`` padding:
``k - 1`` zeros, ``(k - 1) // 2`` of them before), as in the authors' and
BIDL's code.
"""
import torch
import torch.nn.functional as F
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.registry import MODELS

__all__ = ['TA', 'TCJA']


def _positive_int(owner, name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f'{owner}: {name} must be a positive int, got '
                          f'{value!r}')


def _pad_same(signal, conv):
    """Zero-pad the last dim so that ``conv`` keeps its length."""
    total = conv.kernel_size[0] - 1
    return F.pad(signal, (total // 2, total - total // 2))


class _WholeSequence(nn.Module):
    """Shared parts: the ``T`` check and the refused single-step form."""

    def _check_steps(self, x_seq, min_dims):
        owner = type(self).__name__
        if not torch.is_tensor(x_seq) or x_seq.dim() < min_dims:
            raise ConfigError(
                f'{owner}: expected a tensor of at least {min_dims} dims '
                f'[T, B, ...], got shape {tuple(getattr(x_seq, "shape", ()))}')
        if x_seq.shape[0] != self.steps:
            raise ConfigError(
                f'{owner}: built for T = {self.steps} time steps but got '
                f'T = {x_seq.shape[0]}; set steps= to the sequence length')

    def init_state(self, x_t):
        return None

    def step(self, x_t, state=None):
        raise ConfigError(
            f'{type(self).__name__} attends over the whole sequence (its '
            'score for step t depends on later steps), so it has no causal '
            'single-step form; run the multi-step forward on [T, B, ...], or '
            'leave it out of a streaming/deployed model')


@MODELS.register_module()
class TA(_WholeSequence):
    """Temporal-wise attention (Yao et al. 2021) on ``[T, B, ...]``.

    Args:
        steps (int): the sequence length ``T`` the layer is built for.
        reduction (int): MLP reduction ratio ``r`` (``T // r >= 1``).
            Default 2.
        pooling (str): ``'avg'`` (BIDL) or ``'avg+max'``.
    """

    def __init__(self, steps, reduction=2, pooling='avg'):
        super().__init__()
        _positive_int('TA', 'steps', steps)
        _positive_int('TA', 'reduction', reduction)
        if reduction > steps:
            raise ConfigError(f'TA: reduction ({reduction}) cannot exceed '
                              f'steps ({steps})')
        if pooling not in ('avg', 'avg+max'):
            raise ConfigError("TA: pooling must be 'avg' or 'avg+max', got "
                              f'{pooling!r}')
        self.steps, self.reduction, self.pooling = steps, reduction, pooling
        hidden = steps // reduction
        self.mlp = nn.Sequential(nn.Linear(steps, hidden, bias=False),
                                 nn.ReLU(),
                                 nn.Linear(hidden, steps, bias=False))

    def scores(self, x_seq):
        """The attention scores ``d`` as ``[T, B]``."""
        self._check_steps(x_seq, 2)
        flat = x_seq.flatten(2) if x_seq.dim() > 2 else x_seq.unsqueeze(-1)
        logits = self.mlp(flat.mean(-1).t())  # [B, T]
        if self.pooling == 'avg+max':
            logits = logits + self.mlp(flat.amax(-1).t())
        return torch.sigmoid(logits).t()

    def forward(self, x_seq):
        d = self.scores(x_seq)
        return x_seq * d.reshape(d.shape + (1, ) * (x_seq.dim() - 2))

    def extra_repr(self):
        return (f'steps={self.steps}, reduction={self.reduction}, '
                f'pooling={self.pooling!r}')


@MODELS.register_module()
class TCJA(_WholeSequence):
    """Temporal-channel joint attention (Zhu et al. 2022).

    Input ``[T, B, C, ...]``, output of the same shape.

    Args:
        steps (int): the sequence length ``T``.
        channels (int): the channel count ``C`` (dim 2 of the input).
        kernel_size_t (int): kernel of the conv sliding along C. Default 2.
        kernel_size_c (int): kernel of the conv sliding along T. Default 1.
    """

    def __init__(self, steps, channels, kernel_size_t=2, kernel_size_c=1):
        super().__init__()
        for pname, value in (('steps', steps), ('channels', channels),
                             ('kernel_size_t', kernel_size_t),
                             ('kernel_size_c', kernel_size_c)):
            _positive_int('TCJA', pname, value)
        self.steps, self.channels = steps, channels
        self.conv_t = nn.Conv1d(steps, steps, kernel_size_t, bias=False)
        self.conv_c = nn.Conv1d(channels, channels, kernel_size_c,
                                bias=False)

    def scores(self, x_seq):
        """The joint attention ``F`` as ``[T, B, C]``."""
        self._check_steps(x_seq, 3)
        if x_seq.shape[2] != self.channels:
            raise ConfigError(f'TCJA: built for {self.channels} channels (dim'
                              f' 2) but got {x_seq.shape[2]}')
        z = x_seq.flatten(3).mean(-1) if x_seq.dim() > 3 else x_seq
        z = z.permute(1, 0, 2)  # [B, T, C]
        along_c = self.conv_t(_pad_same(z, self.conv_t))  # [B, T, C]
        along_t = self.conv_c(_pad_same(z.transpose(1, 2), self.conv_c))
        along_t = along_t.transpose(1, 2)  # [B, T, C]
        return torch.sigmoid(along_c * along_t).permute(1, 0, 2)

    def forward(self, x_seq):
        f = self.scores(x_seq)
        return x_seq * f.reshape(f.shape + (1, ) * (x_seq.dim() - 3))

    def extra_repr(self):
        return f'steps={self.steps}, channels={self.channels}'
