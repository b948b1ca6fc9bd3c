"""bidl-deploy: round trips per target against PyTorch, refusals, the CLI.

Every expectation is computed here from the PyTorch model itself (its
multi-step logits, its ``step`` states, hooks on its neurons), never copied
from the exporter's own output.
"""
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope

from bidl_train.deploy import deploy, list_targets, lower_model
from bidl_train.deploy.base import UnsupportedFeature
from bidl_train.deploy.lower import LoweringError
from bidl_train.errors import ConfigError
from bidl_train.registry import MODELS
from helpers.deploy_runner import tiny_deploy_config

init_default_scope('bidl_train')


def _classifier(neuron=None, pool=2, norm=True, fc=(16, ), classes=3):
    neuron = neuron or dict(type='LIF')
    backbone = dict(type='ConvLifNet', in_channels=2, input_size=8,
                    channels=[4], pools=[pool], fc=list(fc), norm=norm,
                    neuron=neuron)
    model = MODELS.build(dict(
        type='SpikingClassifier', backbone=backbone,
        head=dict(type='SpikingClsHead', in_features=fc[-1],
                  num_classes=classes)))
    torch.manual_seed(1)
    for module in model.modules():  # non-trivial running statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.1, 0.3)
    return model.eval()


def _inputs(T=6, B=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, 2, 8, 8, generator=gen) > 0.6).float()


def _spike_counts(model, x):
    """Total spikes per neuron layer of the PyTorch model (forward hooks)."""
    counts, handles = {}, []
    for name, module in model.named_modules():
        if type(module).__name__ == 'LIF':
            handles.append(module.register_forward_hook(
                lambda m, i, o, name=name: counts.__setitem__(
                    name, int(o.sum()))))
    with torch.no_grad():
        model(x, mode='tensor')
    for handle in handles:
        handle.remove()
    return counts


@pytest.mark.parametrize('target', ['torchscript', 'onnx'])
def test_round_trip_matches_pytorch(target, tmp_path):
    pytest.importorskip('onnxruntime') if target == 'onnx' else None
    torch.manual_seed(0)
    model = _classifier()
    x = _inputs()
    with torch.no_grad():
        want = model(x, mode='tensor').numpy()
    counts = _spike_counts(model, x)
    assert sum(counts.values()) > 0  # the test is about real spikes
    report = deploy(model, target, x, str(tmp_path), labels=[0, 1, 2, 0])
    assert report['status'] == 'verified'
    ver = report['verification']
    assert ver['spike_agreement_overall'] == 1.0
    assert ver['top1']['pytorch'] == want.argmax(1).tolist()
    assert ver['top1']['deployed'] == want.argmax(1).tolist()
    # the spikes the report counted are the model's own
    assert {k[len('spikes.'):]: v['spikes'] for k, v in
            ver['spike_agreement'].items()} == counts
    assert json.load(open(tmp_path / 'report.json'))['target'] == target
    assert report['latency_ms_per_step'] > 0
    # the resources are those of the architecture: 4x4x4 + 16 neurons,
    # conv fan-in 2*3*3, linear fan-in 64
    res = report['resources']
    assert res['neurons'] == 4 * 4 * 4 + 16
    fan_in = {layer['layer']: layer.get('fan_in') for layer in res['layers']}
    assert fan_in['backbone.layers.0.conv'] == 18
    assert fan_in['backbone.layers.2.linear'] == 64

    # run the written files ourselves, independently of the report
    init = np.load(tmp_path / 'initial_state.npz')
    names = report['state_names']
    assert names == ['backbone.0.v', 'backbone.2.v', 'head.sum',
                     'head.count']
    states = [torch.from_numpy(np.repeat(init[n], 4, 0) if init[n].ndim
                               else init[n]) for n in names]
    if target == 'torchscript':
        step = torch.jit.load(str(tmp_path / 'step.pt'))
        unrolled = torch.jit.load(str(tmp_path / 'unrolled.pt'))
        with torch.no_grad():
            for x_t in x:
                outs = step(x_t, *states)
                states = list(outs[1:1 + len(names)])
            got_unrolled = unrolled(x).numpy()
        got = outs[0].numpy()
    else:
        import onnxruntime as ort
        step = ort.InferenceSession(str(tmp_path / 'step.onnx'))
        unrolled = ort.InferenceSession(str(tmp_path / 'unrolled.onnx'))
        feeds = [s.numpy() for s in states]
        for x_t in x.numpy():
            outs = step.run(None, dict(zip(['x'] + names, [x_t] + feeds)))
            feeds = outs[1:1 + len(names)]
        got = outs[0]
        got_unrolled = unrolled.run(None, {'x_seq': x.numpy()})[0]
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(got_unrolled, want, atol=1e-5)


def test_step_states_match_model_step(tmp_path):
    """Exported states equal the model's own ``step`` states at every t."""
    model = _classifier(neuron=dict(type='LIF', reset='soft', alpha=0.5,
                                    norm_state=True))
    x = _inputs(T=4, B=2)
    deploy(model, 'torchscript', x, str(tmp_path), verify_samples=False)
    step = torch.jit.load(str(tmp_path / 'step.pt'))
    init = np.load(tmp_path / 'initial_state.npz')
    names = ['backbone.0.v', 'backbone.2.v', 'head.sum', 'head.count']
    states = [torch.from_numpy(np.repeat(init[n], 2, 0) if init[n].ndim
                               else init[n]) for n in names]
    ref_state = None
    with torch.no_grad():
        for x_t in x:
            outs = step(x_t, *states)
            states = list(outs[1:5])
            y, ref_state = model.step(x_t, ref_state)
            torch.testing.assert_close(outs[0], y, atol=1e-5, rtol=0)
            torch.testing.assert_close(states[0], ref_state['backbone']['0']['v'],
                                       atol=1e-5, rtol=0)
            torch.testing.assert_close(states[1], ref_state['backbone']['2']['v'],
                                       atol=1e-5, rtol=0)
            torch.testing.assert_close(states[3], ref_state['head']['count'])


def test_torchscript_loads_without_bidl_train(tmp_path):
    model = _classifier()
    x = _inputs(T=3, B=1)
    deploy(model, 'torchscript', x, str(tmp_path), verify_samples=False)
    with torch.no_grad():
        want = model(x, mode='tensor')
    np.save(tmp_path / 'x.npy', x.numpy())
    code = (
        'import sys; sys.modules["bidl_train"] = None\n'
        'import numpy as np, torch\n'
        f'm = torch.jit.load({str(tmp_path / "unrolled.pt")!r})\n'
        f'x = torch.from_numpy(np.load({str(tmp_path / "x.npy")!r}))\n'
        'print(" ".join(map(str, m(x).flatten().tolist())))\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, cwd=str(tmp_path), check=True).stdout
    got = torch.tensor([float(v) for v in out.split()])
    torch.testing.assert_close(got, want.flatten(), atol=1e-5, rtol=0)


def test_batchnorm_folded_into_conv(tmp_path):
    model = _classifier()
    lowered = lower_model(model)
    assert any('folded into backbone.layers.0.conv' in n
               for n in lowered.folded)
    # no BatchNorm node is left in the lowered chain
    kinds = [type(layer.node).__name__ for layer in lowered.layers]
    assert 'ChannelAffineNode' not in kinds


def test_negative_bn_scale_is_not_folded_across_max_pool():
    model = _classifier()
    bn = model.backbone.layers[0].norm
    bn.weight.data[0] = -1.0  # max(-x) != -max(x)
    lowered = lower_model(model)
    kinds = [type(layer.node).__name__ for layer in lowered.layers]
    assert 'ChannelAffineNode' in kinds
    x = _inputs(T=3, B=2)
    from bidl_train.deploy.nets import StepNet, UnrolledNet
    with torch.no_grad():
        torch.testing.assert_close(
            UnrolledNet(StepNet(lowered))(x), model(x, mode='tensor'),
            atol=1e-5, rtol=0)


@pytest.mark.parametrize('precision', ['fp16', 'int8'])
def test_reduced_precision_is_measured(precision, tmp_path):
    pytest.importorskip('onnxruntime')
    model = _classifier()
    x = _inputs()
    report = deploy(model, 'onnx', x, str(tmp_path), labels=[0, 1, 2, 0],
                    precision=precision)
    ver = report['verification']
    assert report['precision'] == precision
    assert 'accuracy_change' in ver
    assert 0.9 <= ver['spike_agreement_overall'] <= 1.0
    # fp16 through the TorchScript exporter the suite uses: T fixed, and the
    # manifest says the value (dynamo: dynamic, test_onnx_exporter.py)
    manifest = json.load(open(tmp_path / 'manifest.json'))
    want_t = 6 if precision == 'fp16' else 'dynamic'
    assert manifest['unrolled_time_steps'] == want_t
    if precision == 'int8':
        import onnx
        graph = onnx.load(str(tmp_path / 'step.onnx')).graph
        int8 = [t for t in graph.initializer
                if t.data_type == onnx.TensorProto.INT8]
        assert len(int8) == 3  # conv, fc, head weights stored as int8
        assert report['resources']['weight_bytes'] == \
            report['resources']['weights']


def test_unknown_layer_is_refused_by_name():
    model = _classifier()
    model.backbone.layers[1] = torch.nn.GRU(4, 4)  # recurrent, unknown
    with pytest.raises(LoweringError, match=r'backbone\.layers\.1.*GRU'):
        lower_model(model)


def test_unknown_target_lists_targets(tmp_path):
    with pytest.raises(ConfigError, match='torchscript'):
        deploy(_classifier(), 'tensorrt', _inputs(), str(tmp_path))
    assert [n for n, _ in list_targets()][:2] == ['torchscript', 'onnx']


def test_cli_end_to_end(tmp_path):
    pytest.importorskip('onnxruntime')
    cfg = tmp_path / 'tiny.py'
    cfg.write_text(tiny_deploy_config(tmp_path / 'data', users_test=2,
                                      loader='test_dataloader'))
    from bidl_train.cli.common import load_config
    from bidl_train.cli.deploy import main
    model = MODELS.build(load_config(str(cfg)).model)
    ckpt = tmp_path / 'ck.pth'
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, ckpt)
    out = tmp_path / 'out'
    assert main([str(cfg), str(ckpt), '--target', 'onnx', '--out', str(out),
                 '--verify', '3']) == 0
    report = json.load(open(out / 'report.json'))
    assert report['status'] == 'verified'
    assert report['verification']['samples'] == 3
    assert osp.isfile(out / 'step.onnx') and osp.isfile(out / 'manifest.json')
    # a wrong checkpoint and an unknown target are user errors (exit 2)
    other = tmp_path / 'bad.pth'
    torch.save({'meta': {}, 'state_dict': {'x': torch.zeros(1)}}, other)
    with pytest.raises(SystemExit) as err:
        main([str(cfg), str(other), '--target', 'onnx', '--out', str(out)])
    assert err.value.code == 2
    with pytest.raises(SystemExit) as err:
        main([str(cfg), str(ckpt), '--target', 'nope'])
    assert err.value.code == 2
    assert main(['--list']) == 0


def test_cli_int8_measures_accuracy_on_validation_split(tmp_path, capsys):
    """``--precision int8 --verify N``: top-1 of both on N validation samples.

    The test split is deliberately unusable, so the report can only come
    from the validation split; the expected accuracies are computed here
    from the PyTorch model and from running the written ONNX graph.
    """
    ort = pytest.importorskip('onnxruntime')
    data = str(tmp_path / 'data')
    cfg = tmp_path / 'tiny_val.py'
    cfg.write_text(tiny_deploy_config(data, users_test=2) + f'''
test_dataloader = dict(dataset=dict(type='DVS128Gesture',
                                    data_root={str(tmp_path / 'missing')!r}))
''')
    from bidl_train.cli.common import load_config
    from bidl_train.cli.deploy import main
    from bidl_train.registry import DATASETS
    config = load_config(str(cfg))
    torch.manual_seed(0)
    model = MODELS.build(config.model).eval()
    ckpt = tmp_path / 'ck.pth'
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, ckpt)
    out = tmp_path / 'out'
    # int8 without samples to measure on is refused before any work
    with pytest.raises(SystemExit) as err:
        main([str(cfg), str(ckpt), '--target', 'onnx', '--out', str(out),
              '--precision', 'int8', '--verify', '0'])
    assert err.value.code == 2 and not out.exists()
    assert main([str(cfg), str(ckpt), '--target', 'onnx', '--out', str(out),
                 '--precision', 'int8', '--verify', '3']) == 0
    report = json.load(open(out / 'report.json'))
    acc = report['accuracy']
    assert acc['split'] == 'val' and acc['samples'] == 3

    dataset = DATASETS.build(config.val_dataloader.dataset)
    samples = [dataset[i] for i in range(3)]
    labels = np.array([s['label'] for s in samples])
    batch = model.data_preprocessor(dict(
        inputs=torch.stack([torch.as_tensor(s['inputs']) for s in samples]),
        label=torch.as_tensor(labels)), False)['inputs'].float()
    with torch.no_grad():
        want_torch = model(batch, mode='tensor').argmax(1).numpy()
    session = ort.InferenceSession(str(out / 'unrolled.onnx'))
    deployed = session.run(None, {'x_seq': batch.numpy()})[0].argmax(1)
    assert acc['pytorch_top1'] == pytest.approx((want_torch == labels).mean())
    assert acc['deployed_top1'] == pytest.approx((deployed == labels).mean())
    assert acc['change'] == pytest.approx(acc['deployed_top1'] -
                                          acc['pytorch_top1'])
    summary = capsys.readouterr().out
    assert 'top-1 on 3 val samples: deployed (int8)' in summary


@pytest.mark.parametrize('target', ['torchscript', 'onnx'])
def test_unrolled_graph_takes_any_T_and_batch(target, tmp_path):
    """Exported with T = 4, batch 1 example; run with other T and batch."""
    if target == 'onnx':
        ort = pytest.importorskip('onnxruntime')
    model = _classifier()
    deploy(model, target, _inputs(T=4, B=1), str(tmp_path),
           verify_samples=False)
    manifest = json.load(open(tmp_path / 'manifest.json'))
    assert 'dynamic' in manifest['unrolled']['note'] or \
        'free' in manifest['unrolled']['note']
    # x_seq is [T, B, ...]: the batch is its axis 1
    assert manifest['unrolled']['input']['batch_axis'] == 1
    for T, B in ((2, 3), (9, 5)):
        x = _inputs(T=T, B=B, seed=T)
        with torch.no_grad():
            want = model(x, mode='tensor').numpy()
        if target == 'torchscript':
            module = torch.jit.load(str(tmp_path / 'unrolled.pt'))
            with torch.no_grad():
                got = module(x).numpy()
        else:
            session = ort.InferenceSession(str(tmp_path / 'unrolled.onnx'))
            got = session.run(None, {'x_seq': x.numpy()})[0]
        np.testing.assert_allclose(got, want, atol=1e-5)
