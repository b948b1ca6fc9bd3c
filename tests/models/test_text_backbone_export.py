"""Text backbones check their token ids in eager mode and leave the check
out of an exported graph (torch.export cannot capture a data-dependent
``max().item()``; before, the ONNX exporter fell back for every text model)."""
import pytest
import torch

from bidl_train.errors import ConfigError
from bidl_train.models.backbones.delay_text_lif import DelayTextLif
from bidl_train.models.backbones.fasttext_lif import FastTextLif

BACKBONES = {
    'fasttext': lambda: FastTextLif(vocab_size=10, embedding_dim=4,
                                    hidden_dim=6),
    'delay': lambda: DelayTextLif(vocab_size=10, embedding_dim=4,
                                  hidden_dim=6),
}


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_out_of_range_ids_are_refused_in_eager_mode(name):
    tokens = torch.tensor([[1, 2], [3, 10]])  # 10 == vocab_size
    with pytest.raises(ConfigError, match=r'token ids must lie in \[0, 10\)'):
        BACKBONES[name]()(tokens)


class _OneStep(torch.nn.Module):
    """What deployment exports: one step with the state explicit."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, tokens):
        out, _ = self.backbone.step(tokens, None)
        return out


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_torch_export_captures_one_step(name):
    model = _OneStep(BACKBONES[name]()).eval()
    tokens = torch.tensor([3, 9])
    program = torch.export.export(model, (tokens, ))
    torch.testing.assert_close(program.module()(tokens), model(tokens))
