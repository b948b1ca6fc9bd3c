"""A researcher's first day (issue 20): install, data, console, outputs.

One tiny training run in a subprocess (stdout a pipe, as in CI logs) is
shared by the console tests; bidl-test then runs on its checkpoint, in this
process. The other tests call the commands or their helpers in-process.
"""
import argparse
import csv
import json
import os
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config

from bidl_train.cli import deploy as deploy_cli
from bidl_train.cli import test as test_cli
from bidl_train.cli import train as train_cli
from bidl_train.cli.common import (apply_data_root, explain_arguments,
                                   load_config)
from bidl_train.errors import ConfigError

from helpers.commands import REPO, run, run_here, tiny_config, tool  # noqa: E402,E501


# ---------------------------------------------------------------------------
# One training run with --data-root, stdout redirected
# ---------------------------------------------------------------------------
@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('first_day')
    cfg = tiny_config(tmp)
    data = tmp / 'data'
    with open(cfg, 'a') as f:
        # the config points nowhere: only --data-root finds the data
        f.write("_gen = dict(_gen, data_root='/nonexistent/data')\n"
                "train_dataloader = dict(batch_size=4, dataset=_gen)\n"
                "val_dataloader = dict(batch_size=4, dataset=_gen)\n"
                "test_dataloader = dict(batch_size=4, dataset=_gen)\n"
                # no LoggerHook line inside the epoch: only the progress
                # hook's lines (heartbeat 0 s: after every iteration) show
                "default_hooks = dict(logger=dict(interval=1000))\n"
                "custom_hooks = [dict(type='ProgressBarHook', "
                "heartbeat_s=0)]\n")
    work = tmp / 'work'
    proc = run([tool('train'), cfg, '--work-dir', str(work),
                '--data-root', str(data)], tmp)
    return dict(tmp=tmp, cfg=cfg, data=data, work=work, proc=proc)


def _log_text(work):
    logs = [osp.join(d, f) for d, _, files in os.walk(work) for f in files
            if f.endswith('.log')]
    assert len(logs) == 1, logs
    with open(logs[0]) as f:
        return f.read()


def test_data_root_option_points_every_split_at_the_data(trained):
    # the generated data landed under --data-root and training finished
    assert (trained['work'] / 'epoch_1.pth').is_file()
    assert osp.isdir(trained['data'])
    assert 'nonexistent' not in trained['proc'].stdout


def test_console_has_no_environment_or_config_dump(trained):
    out = trained['proc'].stdout
    assert 'System environment' not in out
    assert 'Config:' not in out
    assert 'Hooks will be executed' not in out
    assert len(out.splitlines()) < 60, out
    # one summary line names the log file that keeps the dump
    log = _log_text(trained['work'])
    assert 'System environment' in log and 'Config:' in log
    assert 'environment and the full config are in' in out


def test_validation_lines_carry_no_confusion_matrix(trained):
    out = trained['proc'].stdout
    val = [ln for ln in out.splitlines() if 'Epoch(val)' in ln]
    assert any('accuracy/top1' in ln for ln in val)
    assert not any('confusion_matrix' in ln or 'per_class' in ln
                   for ln in val)
    # the log file keeps it, and the TensorBoard scalars file the scalars
    assert 'confusion_matrix: [[' in _log_text(trained['work'])


def test_mmengine_deprecation_notices_stay_off_the_console(trained):
    text = trained['proc'].stdout + trained['proc'].stderr
    assert 'FileClient' not in text
    assert 'HardDiskBackend' not in text


def test_each_split_says_how_many_samples_it_found(trained):
    lines = trained['proc'].stdout.splitlines()
    train = [ln for ln in lines if '(train): 8 samples under' in ln
             and '2 iterations of batch size 4' in ln]
    val = [ln for ln in lines if '(test): 4 samples under' in ln
           and '1 iteration of batch size 4' in ln]
    assert len(train) == 1 and len(val) == 1, lines


def test_progress_lines_without_a_terminal(trained):
    out = trained['proc'].stdout
    # the LoggerHook is silent inside the epoch (interval 1000): the hook's
    # heartbeat names the iteration, the elapsed time and the loss
    assert 'epoch 1/1: 1/2 iterations' in out, out
    line = next(ln for ln in out.splitlines() if 'epoch 1/1: 1/2' in ln)
    assert 'elapsed' in line and 'eta' in line and 'loss' in line


# ---------------------------------------------------------------------------
# bidl-test --out: per-sample predictions; --metrics-out: metrics
# ---------------------------------------------------------------------------
def test_bidl_test_out_writes_predictions_and_metrics_apart(trained):
    tmp = trained['tmp']
    preds, metrics = tmp / 'preds.json', tmp / 'metrics.json'
    run_here([tool('test'), trained['cfg'],
              str(trained['work'] / 'epoch_1.pth'), '--work-dir',
              str(trained['work']), '--data-root', str(trained['data']),
              '--out', str(preds), '--metrics-out', str(metrics)], tmp)
    scores = json.loads(metrics.read_text())['metrics']
    result = json.loads(preds.read_text())
    samples = result['predictions']
    assert [s['sample_idx'] for s in samples] == [0, 1, 2, 3]
    # the synthetic test split: one sample per class, in class order
    assert sorted(s['gt_label'] for s in samples) == [0, 1, 2, 3]
    for s in samples:
        assert len(s['pred_score']) == 4
        top = int(np.argmax(s['pred_score']))
        assert s['pred_label'] in (top, -1)
    hits = sum(s['pred_label'] == s['gt_label'] for s in samples)
    assert scores['accuracy/top1'] == pytest.approx(100 * hits / 4)
    # as before, the .json also holds the metrics
    assert result['metrics']['accuracy/top1'] == scores['accuracy/top1']


def test_prediction_files_in_csv_and_npz(tmp_path):
    predictions = [
        dict(sample_idx=0, gt_label=1, pred_label=1, pred_score=[0.2, 0.8]),
        dict(sample_idx=1, gt_label=0, pred_label=-1,
             pred_score=[0.5, 0.5]),
    ]
    header = dict(config='c.py', checkpoint='x.pth', metrics={})
    test_cli.write_predictions(str(tmp_path / 'p.csv'), predictions, header)
    with open(tmp_path / 'p.csv') as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['sample_idx', 'gt_label', 'pred_label', 'score_0',
                       'score_1']
    assert rows[2] == ['1', '0', '-1', '0.5', '0.5']
    test_cli.write_predictions(str(tmp_path / 'p.npz'), predictions, header,
                               classes=['a', 'b'])
    with np.load(tmp_path / 'p.npz', allow_pickle=False) as npz:
        assert npz['pred_score'].shape == (2, 2)
        assert npz['pred_label'].tolist() == [1, -1]
        assert npz['gt_label'].tolist() == [1, 0]
        assert npz['classes'].tolist() == ['a', 'b']


@pytest.mark.parametrize('name, needle', [
    ('results.pkl', 'pickle'), ('results.txt', '.json, .csv, .npz')])
def test_out_refuses_pickle_and_unknown_formats(tmp_path, capsys, name,
                                                needle):
    cfg = tiny_config(tmp_path)
    with pytest.raises(SystemExit) as exc:
        test_cli.main([cfg, 'x.pth', '--out', str(tmp_path / name)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and name in err


# ---------------------------------------------------------------------------
# --data-root and _data_root
# ---------------------------------------------------------------------------
def test_data_root_reaches_datasets_inside_wrappers():
    cfg = Config(dict(
        train_dataloader=dict(dataset=dict(
            type='ConcatDataset', datasets=[
                dict(type='A', data_root='a'),
                dict(type='RepeatDataset', times=2,
                     dataset=dict(type='B', data_root='b'))])),
        val_dataloader=dict(dataset=dict(type='C', data_root='c')),
        test_dataloader=None))
    apply_data_root(cfg, '/d')
    inner = cfg.train_dataloader.dataset.datasets
    assert inner[0].data_root == '/d'
    assert inner[1].dataset.data_root == '/d'
    assert 'data_root' not in inner[1]  # the wrapper takes none
    assert cfg.val_dataloader.dataset.data_root == '/d'


def test_cfg_option_data_root_variable_takes_effect(tmp_path):
    path = tmp_path / 'c.py'
    path.write_text(
        "_data_root = 'datasets/X'\n"
        "train_dataloader = dict(dataset=dict(type='SyntheticGesture', "
        "data_root=_data_root))\n"
        "val_dataloader = dict(dataset=dict(type='SyntheticGesture', "
        "data_root=_data_root + '/val'))\n"
        "test_dataloader = dict(dataset=dict(type='SyntheticGesture', "
        "data_root='elsewhere'))\n")
    cfg = load_config(str(path), {'_data_root': '/data/X'})
    assert cfg.train_dataloader.dataset.data_root == '/data/X'
    assert cfg.val_dataloader.dataset.data_root == '/data/X/val'
    assert cfg.test_dataloader.dataset.data_root == 'elsewhere'
    path.write_text("train_dataloader = dict(dataset=dict("
                    "type='SyntheticGesture', data_root='d'))\n")
    with pytest.raises(ConfigError, match='--data-root'):
        load_config(str(path), {'_data_root': '/data/X'})


# ---------------------------------------------------------------------------
# Typos in nested keys and types
# ---------------------------------------------------------------------------
def _train_error(tmp_path, capsys, *options):
    cfg = tiny_config(tmp_path)
    with pytest.raises(SystemExit) as exc:
        train_cli.main([cfg, '--work-dir', str(tmp_path / 'w'),
                        '--cfg-options', *options])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert 'Traceback' not in err and err.count('\n') == 1, err
    return err


@pytest.mark.parametrize('option, needles', [
    ('model.backbone.neuron.type=LIFF',
     ['model.backbone.neuron.type', "'LIFF'", 'LIF']),
    ('optim_wrapper.optimizer.type=Adm',
     ['optim_wrapper.optimizer.type', "'Adm'", 'Adam']),
])
def test_unknown_nested_type_lists_close_names(tmp_path, capsys, option,
                                               needles):
    err = _train_error(tmp_path, capsys, option)
    for needle in needles:
        assert needle in err, err


def test_misspelt_loop_argument_is_named_with_its_path(tmp_path, capsys):
    err = _train_error(tmp_path, capsys, 'train_cfg.max_epoch=1')
    assert 'train_cfg.max_epoch' in err and "'max_epochs'" in err, err
    # the failed run left no empty timestamp folder
    work = tmp_path / 'w'
    assert not [n for n in os.listdir(work) if n[:8].isdigit()], \
        os.listdir(work)


def test_misspelt_neuron_argument_names_the_closest(tmp_path, capsys):
    err = _train_error(tmp_path, capsys, 'model.backbone.neuron.alpah=0.3')
    assert 'model.backbone.neuron.alpah' in err and "'alpha'" in err, err


@pytest.mark.parametrize('message, path, close', [
    ("Adam.__init__() got an unexpected keyword argument 'lrr'",
     'optim_wrapper.optimizer.lrr', "'lr'"),
    ("CosineAnnealingParamScheduler.__init__() got an unexpected keyword "
     "argument 'T_mx'", 'param_scheduler.0.T_mx', "'T_max'"),
    ("Accuracy.__init__() got an unexpected keyword argument 'topkk'",
     'val_evaluator.0.topkk', "'topk'"),
])
def test_constructor_errors_name_path_and_close_arguments(message, path,
                                                          close):
    cfg = load_config(osp.join(REPO, 'configs', 'demo',
                               'synthetic_gesture.py'))
    # what mmengine's build raises for these typos, wrapped as it wraps
    key = path.rsplit('.', 1)[1]
    section = path.rsplit('.', 1)[0]
    node = cfg
    for part in section.split('.'):
        node = node[int(part)] if part.isdigit() else node[part]
    node[key] = 1
    text = explain_arguments(f'config error: class `X` in y.py: {message}',
                             cfg)
    assert path in text and close in text, text


def test_missing_argument_names_where_to_add_it():
    cfg = load_config(osp.join(REPO, 'configs', 'demo',
                               'synthetic_gesture.py'))
    text = explain_arguments(
        "config error: SpikingClsHead.__init__() missing 1 required "
        "positional argument: 'in_features'", cfg)
    assert text.endswith('add them to the config at model.head'), text


def test_failed_run_keeps_a_folder_that_recorded_progress(tmp_path):
    from bidl_train.engine.runner import discard_failed_run_dirs
    work = tmp_path / 'w'
    work.mkdir()
    with pytest.raises(RuntimeError):
        with discard_failed_run_dirs(str(work)):
            for stamp, line in (('20260101_000000', 'Config: ...'),
                                ('20260101_000001',
                                 'Epoch(train) [1][1/2] loss: 1.0')):
                (work / stamp / 'vis_data').mkdir(parents=True)
                (work / stamp / f'{stamp}.log').write_text(line + '\n')
                (work / stamp / 'vis_data' / 'config.py').write_text('x=1')
            raise RuntimeError('boom')
    assert sorted(os.listdir(work)) == ['20260101_000001']


def test_a_reused_visualizer_writes_again_after_the_folder_went(tmp_path):
    """mmengine hands a run of the same name (same config, same second, one
    process: a test driver) the failed run's visualizer; it must recreate
    the removed folder instead of failing on it."""
    from mmengine.visualization import LocalVisBackend, Visualizer

    from bidl_train.engine.runner import discard_failed_run_dirs
    work = tmp_path / 'w'
    work.mkdir()
    vis_dir = work / '20260101_000002' / 'vis_data'
    with pytest.raises(RuntimeError):
        with discard_failed_run_dirs(str(work)):
            visualizer = Visualizer.get_instance(
                'first_day_reuse', save_dir=str(vis_dir.parent),
                vis_backends=[dict(type=LocalVisBackend)])
            visualizer.add_config(Config(dict(a=1)))
            raise RuntimeError('boom')
    assert not (work / '20260101_000002').exists()
    visualizer.add_config(Config(dict(a=2)))
    assert (vis_dir / 'config.py').is_file()


# ---------------------------------------------------------------------------
# --help describes every option
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('module', [train_cli, test_cli, deploy_cli])
def test_help_describes_every_option(module):
    parser = module.build_parser()
    for action in parser._actions:
        if action.help == argparse.SUPPRESS:
            continue
        assert action.help and action.help.strip(), action.option_strings
    text = parser.format_help()
    assert '--data-root' in text


# ---------------------------------------------------------------------------
# The README's install line: extras are optional for the test suite
# ---------------------------------------------------------------------------
def test_tests_needing_extras_skip_without_them(tmp_path):
    """Hide the optional packages and run the tests that need them: they
    must skip, not fail (the README installs only ``.[test]``)."""
    hide = tmp_path / 'hide'
    hide.mkdir()
    # None in sys.modules: "import x" raises ModuleNotFoundError and
    # importlib.util.find_spec("x") says None, as when x is not installed
    (hide / 'sitecustomize.py').write_text(
        'import sys\n'
        f'sys.modules.update(dict.fromkeys({sorted(EXTRAS)!r}))\n')
    proc = run(['-m', 'pytest', '-q', '-p', 'no:cacheprovider',
                *GUARDED_TESTS], REPO, check=False,
               env_extra=dict(PYTHONPATH=f'{hide}{os.pathsep}{REPO}'))
    summary = proc.stdout.strip().splitlines()[-1]
    assert 'failed' not in summary and 'error' not in summary, \
        proc.stdout[-3000:]
    assert 'skipped' in summary, summary


#: the packages of the optional extras (setup.cfg: deploy, events,
#: volumes, gpu) and of the comparison tests
EXTRAS = {'onnx', 'onnxruntime', 'nir', 'h5py', 'aedat', 'nibabel',
          'spikingjelly', 'snntorch', 'norse', 'triton'}

#: tests that failed without the extras before they got their skip guards
#: (test_fuzz_cli's SHD case too; its module fixture runs 12 trainings, too
#: slow to repeat here)
GUARDED_TESTS = [
    'tests/cli/test_commands.py::test_train_resume_test',
    'tests/datasets/test_event_datasets.py::'
    'test_shd_frames_bins_cache_and_config_shapes',
    'tests/configs/test_task_configs_data.py::'
    'test_task_config_trains_on_its_data_layout[shd]',
]
