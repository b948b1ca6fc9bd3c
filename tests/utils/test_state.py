"""The one state protocol (bidl_train.utils.state): every stateful module
kind carries its single-step state as nested dicts whose dotted names are
fixed, the state survives a flatten/unflatten round trip between steps, and
streaming step by step through that round trip equals the multi-step
forward."""
import pytest
import torch
from mmengine.registry import init_default_scope
from torch import nn

from bidl_train.errors import ConfigError
from bidl_train.layers import FcLif, Lif1d, SpikingSequential
from bidl_train.learning import PlasticFcLif
from bidl_train.models.heads import SpikingClsHead
from bidl_train.models.heads.population_head import PopulationClsHead
from bidl_train.neurons import ALIF, LIF
from bidl_train.registry import MODELS
from bidl_train.utils.state import (flatten_state, put_state, state_at,
                                    unflatten_state)

init_default_scope('bidl_train')
T, B = 5, 2


def _classifier(backbone, in_features):
    return MODELS.build(dict(
        type='SpikingClassifier', backbone=backbone,
        head=dict(type='SpikingClsHead', in_features=in_features,
                  num_classes=3)))


def _classifier_convlif():
    return _classifier(dict(type='ConvLifNet', in_channels=2, input_size=8,
                            channels=[4], pools=[None], fc=[16]), 16)


def _classifier_resnet():
    return _classifier(dict(type='ResNetLif', depth=10, in_channels=2,
                            width=4), 32)


def _events(*shape):
    gen = torch.Generator().manual_seed(7)
    return (torch.rand((T, B) + shape, generator=gen) > 0.5).float()


def _rates(*shape):
    gen = torch.Generator().manual_seed(8)
    return torch.rand((T, B) + shape, generator=gen) * 2


# kind, module builder, input [T, B, ...], the flat state names (written by
# hand: the exported graph's state names), whether the single-step output is
# the aggregate of the steps so far (heads, classifiers) or per step
CASES = [
    ('neuron LIF', lambda: LIF(), lambda: _rates(4), ['v'], False),
    ('neuron ALIF', lambda: ALIF(), lambda: _rates(4), ['v', 'a'], False),
    ('sequential stack',
     lambda: SpikingSequential(FcLif(4, 6), nn.ReLU(), Lif1d(6)),
     lambda: _rates(4), ['0.v', '2.v'], False),
    ('plastic layer',
     lambda: PlasticFcLif(4, 3, rule=dict(type='Hebbian', lr=0.1),
                          plasticity='fast'),
     lambda: _rates(4),
     ['local', 'neuron.v', 'rule.pre_trace', 'rule.post_trace'], False),
    ('cls head', lambda: SpikingClsHead(4, 3), lambda: _rates(4),
     ['sum', 'count'], True),
    ('population head', lambda: PopulationClsHead(2, 2), lambda: _rates(4),
     ['sum', 'count'], True),
    ('classifier', _classifier_convlif, lambda: _events(2, 8, 8),
     ['backbone.0.v', 'backbone.2.v', 'head.sum', 'head.count'], True),
    ('branching classifier', _classifier_resnet, lambda: _events(2, 16, 16),
     ['backbone.stem.sn.v'] + [f'backbone.stages.{s}.0.sn{n}.v'
                               for s in range(4) for n in (1, 2)] +
     ['head.sum', 'head.count'], True),
]


def _multi_step(module, x):
    if hasattr(module, 'data_preprocessor'):
        return module(x, mode='tensor')
    return module(x)


@pytest.mark.parametrize('kind,build,inputs,names,aggregated', CASES,
                         ids=[case[0] for case in CASES])
def test_streaming_through_flat_names_equals_multi_step(
        kind, build, inputs, names, aggregated):
    torch.manual_seed(0)
    module = build().eval()
    x = inputs()
    with torch.no_grad():
        expected = _multi_step(module, x)
        state, outputs = None, []
        for x_t in x:
            y, state = module.step(x_t, state)
            outputs.append(y)
            flat = flatten_state(state)
            assert sorted(flat) == sorted(names)
            # what an exported graph carries between steps: the flat names
            state = unflatten_state(flat)
    got = outputs[-1] if aggregated else torch.stack(outputs)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_flatten_names_in_step_order_and_unflatten_inverts():
    a, b, c = torch.zeros(1), torch.ones(1), torch.full((1, ), 2.0)
    state = {'backbone': {'0': {'v': a}, '2': {'v': b, 'a': c}},
             'head': None}
    flat = flatten_state(state)
    assert list(flat) == ['backbone.0.v', 'backbone.2.v', 'backbone.2.a']
    back = unflatten_state(flat)
    assert back == {'backbone': {'0': {'v': a}, '2': {'v': b, 'a': c}}}
    assert list(back['backbone']['2']) == ['v', 'a']
    assert state_at(back, 'backbone.2') == {'v': b, 'a': c}
    assert state_at(back, 'backbone.5.v') is None
    assert state_at(None, 'x') is None


def test_malformed_states_are_refused():
    with pytest.raises(TypeError, match='backbone'):
        flatten_state({'backbone': [{'v': torch.zeros(1)}]})
    with pytest.raises(ValueError, match='overlap'):
        unflatten_state({'a': torch.zeros(1), 'a.v': torch.zeros(1)})
    with pytest.raises(ValueError, match='overlap'):
        put_state({'a': {'v': torch.zeros(1)}}, 'a', torch.zeros(1))


def test_a_branching_module_reads_its_state_by_dotted_name():
    """A ``StatefulModule``'s state is what its flat names say: the nesting
    of an older layout (neuron keys with dots) steps the same."""
    torch.manual_seed(0)
    model = _classifier_resnet().eval()
    x = _events(2, 16, 16)
    with torch.no_grad():
        _, state = model.step(x[0])
        y_nested, _ = model.step(x[1], state)
        flat = flatten_state(state['backbone'])
        dotted = {'.'.join(name.split('.')[:-1]): {'v': value}
                  for name, value in flat.items()}  # {'stem.sn': {'v': t}}
        assert 'stem.sn' in dotted
        y_dotted, _ = model.step(x[1], dict(state, backbone=dotted))
    torch.testing.assert_close(y_dotted, y_nested, rtol=0, atol=0)


@pytest.mark.parametrize('bad,match', [
    ({'backbone': None, 'heads': None}, r"Classifier: .*\['heads'\]"),
    ({'backbone': {'3': {'v': torch.zeros(B, 16)}}},
     r"SpikingSequential: .*\['3'\].*has 0, 1, 2\)"),
    ({'backbone': [{'v': torch.zeros(B, 4, 8, 8)}]}, 'keyed by layer index'),
])
def test_a_state_of_another_module_is_refused(bad, match):
    model = _classifier_convlif().eval()
    with pytest.raises(ConfigError, match=match):
        model.step(_events(2, 8, 8)[0], bad)


def test_a_branching_module_refuses_names_of_no_neuron():
    model = _classifier_resnet().eval()
    x = _events(2, 16, 16)
    with torch.no_grad():
        _, state = model.step(x[0])
    state['backbone']['stem']['bn'] = {'v': torch.zeros(1)}
    with pytest.raises(ConfigError, match=r"ResNetLif: .*stem\.bn\.v"):
        model.step(x[1], state)
