"""A base class method a subclass forgot to implement is a developer bug.

It raises NotImplementedError (a traceback for the developer), not a
BidlError, which the CLI would print as a one-line user mistake.
"""
import pytest
import torch

from bidl_train.deploy.base import DeployTarget, Runtime
from bidl_train.errors import BidlError
from bidl_train.layers.lif_layers import _SynapseLif
from bidl_train.learning.rules.base import LocalRule
from bidl_train.models.backbones.stateful import StatefulModule


class _BareRule(LocalRule):
    pass


CASES = {
    'Runtime.step': lambda: Runtime().step(None, []),
    'DeployTarget.export': lambda: DeployTarget().export(None, None, None),
    'DeployTarget.load': lambda: DeployTarget().load(None),
    'StatefulModule.compute': lambda: StatefulModule().compute(None, None),
    'LocalRule.delta': lambda: _BareRule().delta(None, None, None, {}),
    '_SynapseLif.synapse': lambda: _SynapseLif().synapse(torch.zeros(1)),
}


@pytest.mark.parametrize('name', sorted(CASES))
def test_unimplemented_abstract_method_is_a_developer_error(name):
    with pytest.raises(NotImplementedError) as info:
        CASES[name]()
    assert not isinstance(info.value, BidlError)
    assert 'must implement' in str(info.value)
