"""FastText-style spiking text backbone (BIDL's IMDB network).

One token per time step: ``[T, B]`` int64 token ids ->
``embedding [T, B, E]`` -> ``linear [T, B, H]`` -> LIF -> ``[T, B, H]``.

Padding (token id ``pad_id``, 0 in our vocabularies) must not drive the
neurons. An ``Embedding(padding_idx=0)`` alone does not ensure it: the
linear map's bias would still inject current. So the synaptic input is
multiplied by the mask ``m_t = [token_t != pad_id]`` computed from the token
ids themselves:

``I_t = m_t * (W e(token_t) + b)``

which is exactly zero at padded steps. With the BIDL LIF (``beta = 0``) a
zero input leaves a resting neuron at rest (``u = v = 0``, no spike), so
leading padding (``pad_side='pre'``, the IMDB default) leaves the neuron
states exactly as if the padded steps did not exist; trailing padding only
lets the potential leak (``v <- alpha * v``), as silence does.
"""
from copy import deepcopy

import torch
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.layers import build_neuron
from bidl_train.registry import MODELS
from .stateful import StatefulModule

__all__ = ['FastTextLif']


@MODELS.register_module()
class FastTextLif(StatefulModule):
    """``[T, B]`` token ids -> ``[T, B, hidden_dim]``.

    Args:
        vocab_size (int): number of ids (BIDL IMDB: 1001 = pad + 999 words
            + unknown).
        embedding_dim (int): E (BIDL: 16).
        hidden_dim (int): H (BIDL: 256).
        pad_id (int): id of padding; its steps get zero synaptic input.
        neuron (dict): neuron config (BIDL: analog LIF, noise 1e-3).
    """

    def __init__(self, vocab_size=1001, embedding_dim=16, hidden_dim=256,
                 pad_id=0, neuron=dict(type='LIF')):
        super().__init__()
        for name, value in (('vocab_size', vocab_size),
                            ('embedding_dim', embedding_dim),
                            ('hidden_dim', hidden_dim)):
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f'FastTextLif: {name} must be a positive '
                                  f'int, got {value!r}')
        self.vocab_size = vocab_size
        self.pad_id = pad_id
        self.embedding = nn.Embedding(vocab_size, embedding_dim,
                                      padding_idx=pad_id)
        self.linear = nn.Linear(embedding_dim, hidden_dim)
        self.neuron = build_neuron(deepcopy(neuron), (hidden_dim, ),
                                   'FastTextLif')
        self.out_features = hidden_dim

    def compute(self, tokens, ctx):
        if tokens.dtype not in (torch.int64, torch.int32):
            raise ConfigError(
                'FastTextLif: expected integer token ids [T, B], got dtype '
                f'{tokens.dtype}; use a text dataset (IMDB, SyntheticIMDB) '
                'and keep the preprocessor from casting the inputs')
        if tokens.dim() != 1:
            raise ConfigError('FastTextLif: expected token ids [T, B] (one '
                              f'token per step), got {tokens.dim() + 1} dims')
        # a data-dependent check: torch.export (the ONNX exporter) cannot
        # capture it, and an exported graph's runtime refuses a bad id anyway
        if not torch.compiler.is_exporting() and (
                int(tokens.max()) >= self.vocab_size
                or int(tokens.min()) < 0):
            raise ConfigError(
                f'FastTextLif: token ids must lie in [0, {self.vocab_size}); '
                'set vocab_size to the dataset vocabulary size + 2')
        mask = (tokens != self.pad_id).unsqueeze(-1).to(
            self.linear.weight.dtype)
        current = self.linear(self.embedding(tokens)) * mask
        return ctx.fire(self.neuron, 'neuron', current)
