"""DelayTextLif: synaptic delays, backward reading, single-step form."""
import pytest
import torch

from bidl_train.errors import ConfigError
from bidl_train.models.backbones import DelayTextLif

# token k embeds to the number k (pad 0 -> 0); the delay-d synapse weighs
# 10**d, the bias is 0.5: every current below is a sum of digits
TOKENS = torch.tensor([[0], [1], [2], [3]])  # [T=4, B=1], one leading pad


def _digit_model(bidirectional=False, neuron=None):
    model = DelayTextLif(
        vocab_size=4, embedding_dim=1, hidden_dim=1, delays=3,
        bidirectional=bidirectional,
        neuron=neuron or dict(type='LIF', alpha=0.0, theta=100.0))
    synapses = [model.synapse] + ([model.synapse_bw] if bidirectional
                                  else [])
    with torch.no_grad():
        model.embedding.weight.copy_(torch.arange(4.0).unsqueeze(1))
        for synapse in synapses:
            # the weights of delays 0, 1, 2 steps
            synapse.linear.weight.copy_(torch.tensor([[1.0, 10.0, 100.0]]))
            synapse.linear.bias.fill_(0.5)
    return model.eval()


def test_current_sums_the_delayed_embeddings():
    with torch.no_grad():
        current = _digit_model().synaptic_current(TOKENS)
    # I_0: padding, no current; I_1 = 0.5 + 1; I_2 = 0.5 + 2 + 10 * 1;
    # I_3 = 0.5 + 3 + 10 * 2 + 100 * 1
    assert current.flatten().tolist() == [0.0, 1.5, 12.5, 123.5]


def test_backward_population_reads_the_review_reversed():
    model = _digit_model(bidirectional=True)
    with torch.no_grad():
        current = model.synaptic_current(TOKENS, backward=True)
        spikes = model(TOKENS)
    # reversed ids 3, 2, 1, 0: 0.5 + 3; 0.5 + 2 + 30; 0.5 + 1 + 20 + 300;
    # padding
    assert current.flatten().tolist() == [3.5, 32.5, 321.5, 0.0]
    # no leak, threshold 100: the forward neuron fires where it has read
    # 1, 2, 3 (step 3); the backward one where it has read 3, 2, 1, which
    # is original step 1
    assert spikes.shape == (4, 1, 2)
    assert spikes[:, 0, 0].tolist() == [0.0, 0.0, 0.0, 1.0]
    assert spikes[:, 0, 1].tolist() == [0.0, 1.0, 0.0, 0.0]


def test_single_step_form_equals_multi_step():
    torch.manual_seed(0)
    model = DelayTextLif(vocab_size=20, embedding_dim=4, hidden_dim=6,
                         delays=3, neuron=dict(type='PLIF', tau=4.0)).eval()
    tokens = torch.randint(1, 20, (7, 3))
    tokens[:2, 0] = 0  # leading padding in one review
    with torch.no_grad():
        whole = model(tokens)
        state, steps = None, []
        for t in range(7):
            out, state = model.step(tokens[t], state)
            steps.append(out)
    assert whole.sum() > 0  # something fired: the comparison is not vacuous
    torch.testing.assert_close(torch.stack(steps), whole)


def test_embed_dropout_acts_in_training_only():
    torch.manual_seed(0)
    model = DelayTextLif(vocab_size=20, embedding_dim=8, hidden_dim=4,
                         embed_dropout=0.5)
    tokens = torch.randint(1, 20, (5, 2))
    model.train()
    dropped = model.synaptic_current(tokens)
    model.eval()
    kept = model.synaptic_current(tokens)
    assert not torch.allclose(dropped, kept)
    torch.testing.assert_close(model.synaptic_current(tokens), kept)


@pytest.mark.parametrize('kwargs,match', [
    (dict(delays=0), 'delays'),
    (dict(hidden_dim=2.5), 'hidden_dim'),
    (dict(embed_dropout=1.0), 'embed_dropout'),
])
def test_bad_arguments_raise_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        DelayTextLif(**kwargs)


def test_refusals_name_the_problem():
    model = DelayTextLif(vocab_size=10, embedding_dim=4, hidden_dim=6,
                         bidirectional=True)
    with pytest.raises(ConfigError, match='single-step'):
        model.step(torch.ones(2, dtype=torch.long))
    with pytest.raises(ConfigError, match='vocab_size'):
        model(torch.full((3, 2), 12, dtype=torch.long))
    with pytest.raises(ConfigError, match='integer token ids'):
        model(torch.rand(3, 2))
