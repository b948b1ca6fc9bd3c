"""Spiking text backbone with synaptic delays, embedding dropout and an
optional second population that reads the review backwards.

One token per time step, as :class:`FastTextLif`: ``[T, B]`` token ids ->
``embedding [T, B, E]`` -> synaptic current ``[T, B, H]`` -> spiking
neurons -> spikes ``[T, B, H]`` (``[T, B, 2H]`` when ``bidirectional``).

Synaptic delays. Each hidden neuron receives every embedding channel
through ``delays`` synapses, one per delay ``d = 0 .. delays-1`` steps, each
with its own weight ``W_d`` (``[H, E]``):

``I_t = m_t * (b + sum_d W_d e_{t-d})``,   ``e_{t-d} = 0`` for ``t - d < 0``

where ``m_t = [token_t != pad_id]`` (padded steps get no current, as in
:class:`FastTextLif`, so leading padding leaves the neurons at rest). A
neuron therefore sees a word together with the ``delays - 1`` words before
it in one step, an n-gram, instead of relying on its leak alone to remember
them. ``delays=1`` is :class:`FastTextLif`'s synapse.

Backward reading (``bidirectional=True``): a second population with its
own synapses and neurons reads the token sequence reversed; its spikes are
flipped back in time and concatenated to the forward ones, so the output at
step ``t`` carries the words up to ``t`` (forward) and from ``t`` on
(backward). It needs the whole review before the first step, so it has no
single-step form (:meth:`step` refuses it).
"""
from copy import deepcopy

import torch
from torch import nn
from torch.nn import functional as F

from bidl_train.errors import ConfigError
from bidl_train.layers import build_neuron
from bidl_train.registry import MODELS

__all__ = ['DelayTextLif']


class _DelayedSynapse(nn.Module):
    """``[T, B, E]`` embeddings -> ``[T, B, H]`` current with delays.

    One matrix multiply on the window ``[e_t, e_{t-1}, ..., e_{t-D+1}]``
    (``[T, B, D*E]``): ``weight[:, d*E:(d+1)*E]`` is ``W_d``; the same
    maths as a causal ``Conv1d`` over the steps.
    """

    def __init__(self, embedding_dim, hidden_dim, delays):
        super().__init__()
        self.delays = delays
        self.linear = nn.Linear(embedding_dim * delays, hidden_dim)

    def forward(self, emb):
        steps = emb.shape[0]
        # D - 1 zero embeddings before step 0: nothing was read before it
        padded = F.pad(emb, (0, 0, 0, 0, self.delays - 1, 0))
        start = self.delays - 1
        window = torch.cat([padded[start - d:start - d + steps]
                            for d in range(self.delays)], dim=-1)
        return self.linear(window)

    def step(self, emb_t, history):
        """Current at one step from ``emb_t`` ``[B, E]`` and ``history``
        ``[B, (D-1)*E]`` (``[e_{t-1}, ..., e_{t-D+1}]``, newest first)."""
        window = torch.cat([emb_t, history], dim=-1)
        return self.linear(window), window[:, :history.shape[-1]]


@MODELS.register_module()
class DelayTextLif(nn.Module):
    """``[T, B]`` token ids -> ``[T, B, H]`` (``[T, B, 2H]`` bidirectional).

    Args:
        vocab_size (int): number of ids (dataset vocabulary + pad + unknown).
        embedding_dim (int): E.
        hidden_dim (int): H, neurons per reading direction.
        delays (int): synapses per input channel, delays 0 .. delays-1
            steps (1: no delay, the FastTextLif synapse).
        embed_dropout (float): dropout on the embeddings during training.
        bidirectional (bool): add a population reading backwards.
        pad_id (int): id of padding; its steps get zero synaptic current.
        neuron (dict): neuron config, one population per direction.
    """

    def __init__(self, vocab_size=1001, embedding_dim=128, hidden_dim=512,
                 delays=1, embed_dropout=0.0, bidirectional=False, pad_id=0,
                 neuron=dict(type='LIF')):
        super().__init__()
        for name, value in (('vocab_size', vocab_size),
                            ('embedding_dim', embedding_dim),
                            ('hidden_dim', hidden_dim), ('delays', delays)):
            if isinstance(value, bool) or not isinstance(value, int) or \
                    value <= 0:
                raise ConfigError(f'DelayTextLif: {name} must be a positive '
                                  f'int, got {value!r}')
        if not 0.0 <= embed_dropout < 1.0:
            raise ConfigError('DelayTextLif: embed_dropout must lie in [0, 1)'
                              f', got {embed_dropout!r}')
        self.vocab_size = vocab_size
        self.pad_id = pad_id
        self.delays = delays
        self.bidirectional = bool(bidirectional)
        self.embedding = nn.Embedding(vocab_size, embedding_dim,
                                      padding_idx=pad_id)
        self.embed_dropout = nn.Dropout(embed_dropout)
        self.synapse = _DelayedSynapse(embedding_dim, hidden_dim, delays)
        self.neuron = build_neuron(deepcopy(neuron), (hidden_dim, ),
                                   'DelayTextLif')
        if self.bidirectional:
            self.synapse_bw = _DelayedSynapse(embedding_dim, hidden_dim,
                                              delays)
            self.neuron_bw = build_neuron(deepcopy(neuron), (hidden_dim, ),
                                          'DelayTextLif (backward)')
        self.out_features = hidden_dim * (2 if self.bidirectional else 1)

    def _check_tokens(self, tokens, dims):
        if tokens.dtype not in (torch.int64, torch.int32):
            raise ConfigError(
                'DelayTextLif: expected integer token ids, got dtype '
                f'{tokens.dtype}; use a text dataset (IMDB, SyntheticIMDB) '
                'and keep the preprocessor from casting the inputs')
        if tokens.dim() != dims:
            raise ConfigError(
                f'DelayTextLif: expected token ids with {dims} dims '
                f'({"[T, B]" if dims == 2 else "[B]"}), got {tokens.dim()}')
        # data-dependent: torch.export cannot capture it (see FastTextLif)
        if (tokens.numel() and not torch.compiler.is_exporting()
                and (int(tokens.max()) >= self.vocab_size
                     or int(tokens.min()) < 0)):
            raise ConfigError(
                f'DelayTextLif: token ids must lie in [0, {self.vocab_size});'
                ' set vocab_size to the dataset vocabulary size + 2')

    def _mask(self, tokens):
        return (tokens != self.pad_id).unsqueeze(-1).to(
            self.embedding.weight.dtype)

    def synaptic_current(self, tokens, backward=False):
        """``[T, B]`` ids -> the current ``I_t`` ``[T, B, H]`` of the
        forward population (of the backward one, on the reversed ids, when
        ``backward``)."""
        synapse = self.synapse_bw if backward else self.synapse
        if backward:
            tokens = tokens.flip(0)
        emb = self.embed_dropout(self.embedding(tokens))
        return synapse(emb) * self._mask(tokens)

    def forward(self, tokens):
        self._check_tokens(tokens, 2)
        spikes = self.neuron(self.synaptic_current(tokens))
        if not self.bidirectional:
            return spikes
        back = self.neuron_bw(self.synaptic_current(tokens, backward=True))
        return torch.cat([spikes, back.flip(0)], dim=-1)

    def step(self, tokens_t, state=None):
        """One token ``[B]`` -> spikes ``[B, H]``; the state holds the
        neuron state and the last ``delays - 1`` embeddings."""
        if self.bidirectional:
            raise ConfigError(
                'DelayTextLif: bidirectional=True reads the review backwards '
                'and needs all of it first, so it has no single-step form; '
                'use the multi-step forward, or bidirectional=False')
        self._check_tokens(tokens_t, 1)
        emb = self.embed_dropout(self.embedding(tokens_t))
        if state is None:
            history = emb.new_zeros(emb.shape[0],
                                    emb.shape[1] * (self.delays - 1))
            neuron_state = None
        else:
            history, neuron_state = state['history'], state['neuron']
        current, history = self.synapse.step(emb, history)
        spikes, neuron_state = self.neuron.step(
            current * self._mask(tokens_t), neuron_state)
        return spikes, dict(history=history, neuron=neuron_state)
