"""A poisoned model (NaN/Inf weights, an exploding loss) is never kept as good.

Three layers, each tested on its own and through the real command line:

* the metric: NaN/Inf scores and ties at the top are never hits;
* NanGuardHook: non-finite losses, parameters or buffers and a diverging
  loss stop training before a checkpoint is written from them, and the error
  names a checkpoint that really is finite;
* bidl-test warns when scores were non-finite.
"""
import math
import os
import os.path as osp
import re
import shutil
import types

import pytest
import torch
from mmengine.logging import MessageHub
from torch import nn

from bidl_train.engine.checkpoint import safe_load
from bidl_train.engine.hooks.nan_guard import (DivergenceError, NanGuardHook,
                                              NonFiniteLossError,
                                              NonFiniteWeightsError,
                                              first_nonfinite)
from bidl_train.errors import ConfigError
from bidl_train.evaluation import Accuracy

from helpers.commands import REPO, run_here, tiny_config, tool

NAN, INF = float('nan'), float('inf')


# ----------------------------------------------------------------------
# the metric, by hand
# ----------------------------------------------------------------------
def _accuracy(scores, labels, topk):
    metric = Accuracy(topk=topk, num_classes=len(scores[0]))
    metric.process({}, [
        dict(pred_score=torch.tensor(s), gt_label=l)
        for s, l in zip(scores, labels)
    ])
    return metric.compute_metrics(metric.results)


def test_nan_inf_and_tied_scores_are_never_hits_by_hand():
    # 'classes >= true' counts the true class itself; a top-k hit needs it
    # <= k and every score finite
    scores = [
        [0.7, 0.2, 0.1],  # true 0: >= true: 1       -> top1, top2, top3
        [NAN, NAN, NAN],  # true 0: NaN              -> no k
        [0.9, NAN, 0.1],  # true 1: its score is NaN -> no k
        [0.4, 0.4, 0.2],  # true 0, tied at the top: 2 -> top2, top3
        [0.5, 0.25, 0.25],  # true 1, tied 2nd/3rd: 3 -> top3 only
        [1 / 3, 1 / 3, 1 / 3],  # true 2, all tied: 3 -> top3 only
        [0.2, 0.3, 0.5],  # true 2: 1                -> top1, top2, top3
        [INF, 0.0, 0.0],  # true 0: Inf score        -> no k
    ]
    labels = [0, 0, 1, 0, 1, 2, 2, 0]
    out = _accuracy(scores, labels, topk=(1, 2, 3, 5))
    assert out['accuracy/top1'] == pytest.approx(100 * 2 / 8)
    assert out['accuracy/top2'] == pytest.approx(100 * 3 / 8)
    assert out['accuracy/top3'] == pytest.approx(100 * 5 / 8)
    # k beyond the classes: every sample with finite scores
    assert out['accuracy/top5'] == pytest.approx(100 * 5 / 8)
    # class 0: rows 0, 1, 3, 7 (hit: 0); class 1: rows 2, 4 (none);
    # class 2: rows 5, 6 (hit: 6)
    assert out['per_class_accuracy'] == pytest.approx([25.0, 0.0, 50.0])
    # only finite scores with a unique maximum predict: rows 0 (0->0),
    # 4 (1->0) and 6 (2->2)
    assert out['confusion_matrix'] == [[1, 0, 0], [1, 0, 0], [0, 0, 1]]
    assert out['nonfinite_scores'] == 3
    assert out['tied_top_scores'] == 2


def test_all_nan_model_scores_zero_not_hundred():
    out = _accuracy([[NAN] * 4] * 5, [0, 1, 2, 3, 0], topk=(1, 4))
    assert out['accuracy/top1'] == 0.0
    assert out['accuracy/top4'] == 0.0
    assert out['per_class_accuracy'] == [0.0] * 4
    assert sum(map(sum, out['confusion_matrix'])) == 0
    assert out['nonfinite_scores'] == 5


def test_dead_network_scoring_every_class_alike_is_at_zero():
    """A silent SNN gives equal logits: uniform scores are not a hit."""
    out = _accuracy([[0.25] * 4] * 4, [0, 1, 2, 3], topk=(1, 3, 4))
    assert out['accuracy/top1'] == 0.0
    assert out['accuracy/top3'] == 0.0
    assert out['accuracy/top4'] == 100.0
    assert out['tied_top_scores'] == 4


def test_tie_between_two_wrong_classes_still_predicts_nothing():
    # the true class is 3rd either way: a miss for top-1, a hit for top-3
    out = _accuracy([[0.4, 0.4, 0.2]], [2], topk=(1, 2, 3))
    assert (out['accuracy/top1'], out['accuracy/top2'],
            out['accuracy/top3']) == (0.0, 0.0, 100.0)
    assert out['confusion_matrix'] == [[0] * 3] * 3
    assert out['tied_top_scores'] == 1


# ----------------------------------------------------------------------
# the hook, in process
# ----------------------------------------------------------------------
class _Net(nn.Module):

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)
        self.norm = nn.BatchNorm2d(2)


def _runner(tmp_path, model=None):
    return types.SimpleNamespace(
        model=model or _Net(), epoch=0, iter=0, work_dir=str(tmp_path),
        logger=types.SimpleNamespace(warning=lambda msg: None),
        message_hub=MessageHub.get_instance(f'nan_guard_{tmp_path}'))


def _iterate(hook, runner, losses):
    for i, loss in enumerate(losses):
        runner.iter = i
        hook.after_train_iter(runner, i, outputs=dict(loss=torch.tensor(
            loss)))


def test_first_nonfinite_names_the_buffer_and_ignores_norm_overflow():
    net = _Net()
    tensors = list(net.named_parameters()) + list(net.named_buffers())
    assert first_nonfinite(tensors) is None
    # finite values whose 2-norm overflows float32: the fused fast path
    # raises a false alarm, the exact per-tensor search clears it
    with torch.no_grad():
        net.conv.weight.fill_(3e38)
    assert first_nonfinite(tensors) is None
    net.norm.running_var[1] = INF
    assert first_nonfinite(tensors) == 'norm.running_var'


def test_weights_checked_after_every_iteration(tmp_path):
    runner = _runner(tmp_path)
    hook = NanGuardHook()
    hook.before_train_epoch(runner)
    _iterate(hook, runner, [1.4])
    runner.model.norm.running_mean[0] = NAN
    with pytest.raises(NonFiniteWeightsError) as err:
        _iterate(hook, runner, [1.3])
    message = str(err.value)
    assert message.startswith('norm.running_mean became non-finite')
    assert 'iteration 1' in message and '\n' not in message
    assert 'no checkpoint had been saved' in message


def test_weights_changed_outside_the_iteration_are_caught_before_saving(
        tmp_path):
    """Plasticity during validation, another hook: checked at the epoch
    and validation ends, above CheckpointHook's priority."""
    runner = _runner(tmp_path)
    hook = NanGuardHook()
    assert hook.priority == 'ABOVE_NORMAL'  # CheckpointHook: VERY_LOW
    hook.after_train_epoch(runner)
    hook.after_val_epoch(runner)
    runner.model.conv.bias.data[0] = INF
    with pytest.raises(NonFiniteWeightsError,
                       match='conv.bias became non-finite.*validation'):
        hook.after_val_epoch(runner)
    with pytest.raises(NonFiniteWeightsError, match='end of epoch 1'):
        hook.after_train_epoch(runner)


def test_nonfinite_model_at_the_start_is_refused(tmp_path):
    runner = _runner(tmp_path)
    runner.model.norm.weight.data[0] = NAN
    with pytest.raises(NonFiniteWeightsError,
                       match="norm.weight .*model's initialisation"):
        NanGuardHook().before_train(runner)
    # a checkpoint holding NaN (optimizer state included) is named
    runner = _runner(tmp_path)
    runner._load_from = str(tmp_path / 'old.pth')
    hook = NanGuardHook()
    hook.after_load_checkpoint(runner, _checkpoint(
        runner.model, dict(state={0: dict(momentum_buffer=torch.tensor(
            [NAN]))})))
    with pytest.raises(NonFiniteWeightsError,
                       match=r'optimizer.state.0.momentum_buffer .*starts '
                       r'from \(.*old.pth\)'):
        hook.before_train(runner)


def test_resume_keeps_the_divergence_reference(tmp_path):
    saved = dict(_checkpoint(_Net()), nan_guard=dict(
        reference_losses=[2.0, 2.2, 2.1]))
    for resume, expected in ((True, [2.0, 2.2, 2.1]), (False, [])):
        runner = _runner(tmp_path)
        runner._resume = resume
        hook = NanGuardHook()
        hook.after_load_checkpoint(runner, saved)
        assert hook.reference_losses == expected


def test_nonfinite_loss_stops(tmp_path):
    hook = NanGuardHook()
    runner = _runner(tmp_path)
    with pytest.raises(NonFiniteLossError, match='loss became nan'):
        _iterate(hook, runner, [NAN])


def test_divergence_rule(tmp_path):
    """Stops above factor x the median of the first losses, not before."""
    healthy = [2.40, 2.45, 2.30, 2.6, 2.2, 1.9, 3.1, 1.2, 0.6, 0.01, 7.0]
    hook = NanGuardHook(divergence_factor=1e3, reference_iters=5)
    runner = _runner(tmp_path)
    _iterate(hook, runner, healthy)
    # reference: median(2.40, 2.45, 2.30, 2.6, 2.2) = 2.40 -> bound 2400
    assert hook.reference_losses == pytest.approx(healthy[:5])
    _iterate(hook, runner, [2399.0])
    with pytest.raises(DivergenceError) as err:
        _iterate(hook, runner, [2401.0])
    assert '2401 at epoch 1, iteration 1' in str(err.value)
    assert 'median loss of the first 5 iterations (2.4)' in str(err.value)


def test_divergence_reference_excludes_the_current_loss(tmp_path):
    # the second iteration explodes: judged against the first loss alone
    hook = NanGuardHook()
    with pytest.raises(DivergenceError, match='first 1 iteration '):
        _iterate(hook, _runner(tmp_path), [1.41, 2.9e6])


def test_divergence_off_and_non_positive_reference(tmp_path):
    _iterate(NanGuardHook(divergence_factor=None), _runner(tmp_path),
             [1.0, 1e9])
    warnings = []
    runner = _runner(tmp_path)
    runner.logger = types.SimpleNamespace(warning=warnings.append)
    _iterate(NanGuardHook(), runner, [-2.0, 1e9, 1e9])
    assert len(warnings) == 1 and 'not positive' in warnings[0]
    with pytest.raises(ConfigError, match='divergence_factor'):
        NanGuardHook(divergence_factor=0.5)
    with pytest.raises(ConfigError, match='reference_iters'):
        NanGuardHook(reference_iters=0)
    with pytest.raises(ConfigError, match="got 'big'"):
        NanGuardHook(divergence_factor='big')


def _checkpoint(model, optimizer_state=None):
    checkpoint = dict(meta=dict(epoch=1), state_dict=model.state_dict())
    if optimizer_state is not None:
        checkpoint['optimizer'] = optimizer_state
    return checkpoint


def test_save_is_refused_for_nonfinite_weights_or_optimizer_state(tmp_path):
    runner = _runner(tmp_path)
    hook = NanGuardHook()
    net = _Net()
    state = dict(state={0: dict(exp_avg=torch.zeros(2),
                                exp_avg_sq=torch.tensor([1.0, INF]))},
                 param_groups=[dict(lr=0.1, params=[0])])
    with pytest.raises(NonFiniteWeightsError,
                       match='optimizer.state.0.exp_avg_sq is non-finite'):
        hook.before_save_checkpoint(runner, _checkpoint(net, state))
    net.norm.running_var[0] = INF
    with pytest.raises(NonFiniteWeightsError,
                       match='refusing to save.*norm.running_var'):
        hook.before_save_checkpoint(runner, _checkpoint(net))


def test_saved_checkpoints_are_tracked_and_best_comes_last(tmp_path):
    runner = _runner(tmp_path)
    hook = NanGuardHook()
    hook.before_train(runner)
    net = _Net()
    for name, key in (('epoch_1.pth', 'last_ckpt'),
                      ('best_acc_epoch_1.pth', 'best_ckpt')):
        path = str(tmp_path / name)
        runner.message_hub.update_info(key, path)  # as CheckpointHook does
        checkpoint = _checkpoint(net)
        hook.before_save_checkpoint(runner, checkpoint)
        torch.save(checkpoint, path)
    # the divergence reference travels with every checkpoint
    assert 'nan_guard' in safe_load(str(tmp_path / 'epoch_1.pth'))
    assert hook.last_good_checkpoint(runner) == str(tmp_path / 'epoch_1.pth')
    # max_keep_ckpts removed it: the best file still holds good weights
    os.remove(tmp_path / 'epoch_1.pth')
    assert hook.last_good_checkpoint(runner) == str(
        tmp_path / 'best_acc_epoch_1.pth')


def test_last_checkpoint_of_a_previous_run_is_loaded_and_checked(tmp_path):
    net = _Net()
    good, bad = tmp_path / 'epoch_1.pth', tmp_path / 'epoch_2.pth'
    torch.save(_checkpoint(net), good)
    net.norm.running_var[0] = NAN
    torch.save(_checkpoint(net), bad)
    runner = _runner(tmp_path)
    hook = NanGuardHook()
    (tmp_path / 'last_checkpoint').write_text(str(good))
    assert hook.last_good_checkpoint(runner) == str(good)
    (tmp_path / 'last_checkpoint').write_text(str(bad))
    assert hook.last_good_checkpoint(runner) is None
    with pytest.raises(NonFiniteLossError) as err:
        _iterate(hook, runner, [NAN])
    assert f'{bad}, named by' in str(err.value)
    assert 'do not resume from it' in str(err.value)


# ----------------------------------------------------------------------
# the three reported scenarios through bidl-train
# ----------------------------------------------------------------------
@pytest.fixture(scope='module')
def data_cfg(tmp_path_factory):
    """The tiny config; its generated data is shared by the module."""
    return tiny_config(tmp_path_factory.mktemp('poisoned'))


def _train(cfg, work, *options, epochs=1):
    return run_here([
        tool('train'), cfg, '--work-dir',
        str(work), '--cfg-options', f'train_cfg.max_epochs={epochs}',
        *options
    ], osp.dirname(cfg), check=False)


def _error_line(proc):
    """Exit 2 with exactly one error line and no traceback."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    lines = [l for l in proc.stderr.splitlines()
             if l.startswith('bidl-train: error:')]
    assert len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


def _nonfinite_tensors(path):
    """Every non-finite tensor anywhere in a checkpoint file."""
    bad = []

    def walk(value, name):
        if torch.is_tensor(value):
            if value.is_floating_point() and not torch.isfinite(
                    value).all():
                bad.append(name)
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f'{name}.{key}')
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                walk(item, f'{name}.{i}')

    walk(safe_load(str(path)), osp.basename(path))
    return bad


def _assert_nothing_poisoned(work):
    checkpoints = sorted(work.glob('*.pth'))
    for path in checkpoints:
        assert _nonfinite_tensors(path) == [], path
    marker = work / 'last_checkpoint'
    if marker.exists():
        assert _nonfinite_tensors(marker.read_text().strip()) == []
    return [p.name for p in checkpoints]


def test_exploding_finite_loss_stops(data_cfg, tmp_path):
    """(a) Adam at lr=1e6: the loss grows to ~1e6 and stays finite."""
    work = tmp_path / 'work'
    line = _error_line(_train(data_cfg, work,
                              'optim_wrapper.optimizer.lr=1e6'))
    assert re.search(r'loss diverged: \S+ at epoch 1, iteration \d+', line)
    assert 'no checkpoint had been saved' in line
    assert _assert_nothing_poisoned(work) == []


def test_nonfinite_weights_from_a_finite_loss_stop_before_saving(
        data_cfg, tmp_path):
    """(b) SGD at lr=1e38: the step overflows the weights, loss finite."""
    work = tmp_path / 'work'
    line = _error_line(_train(data_cfg, work,
                              'optim_wrapper.optimizer.type=SGD',
                              'optim_wrapper.optimizer.lr=1e38'))
    name = re.search(r'error: (\S+) became non-finite', line).group(1)
    assert name.startswith(('backbone.', 'head.')), line
    assert 'although the loss was finite' in line
    assert 'no checkpoint had been saved' in line
    assert _assert_nothing_poisoned(work) == []


@pytest.fixture(scope='module')
def poisoned_in_epoch_2(data_cfg, tmp_path_factory):
    """A good first epoch (checkpoint and best saved), then lr=1e38."""
    cfg = osp.join(osp.dirname(data_cfg), 'lr_jump.py')
    with open(cfg, 'w') as f:
        f.write(f'''_base_ = [{data_cfg!r}]
optim_wrapper = dict(optimizer=dict(_delete_=True, type='SGD', lr=0.01))
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, milestones=[1], gamma=1e40)]
''')
    work = tmp_path_factory.mktemp('jump') / 'work'
    return cfg, work, _train(cfg, work, epochs=3)


def test_poisoned_epoch_names_the_real_last_good_checkpoint(
        poisoned_in_epoch_2):
    _, work, proc = poisoned_in_epoch_2
    line = _error_line(proc)
    assert re.search(r'became non-finite \(NaN/Inf\) at epoch 2, ', line)
    good = re.search(r'the last good checkpoint is (\S+) \(verified finite\)',
                     line).group(1)
    assert good == str(work / 'epoch_1.pth')
    # nothing of epoch 2 was written; what exists is finite, and the
    # markers (last_checkpoint, best) point at it
    assert _assert_nothing_poisoned(work) == [
        'best_accuracy_top1_epoch_1.pth', 'epoch_1.pth'
    ]
    assert (work / 'last_checkpoint').read_text().strip() == good


def _poison(src, dst, key_part):
    """A copy of a checkpoint with one tensor set to NaN (an old run's)."""
    checkpoint = safe_load(str(src))
    key = next(k for k in checkpoint['state_dict'] if key_part in k)
    checkpoint['state_dict'][key].fill_(NAN)
    torch.save(checkpoint, dst)
    return key


def test_resuming_a_poisoned_checkpoint_is_refused(poisoned_in_epoch_2,
                                                   tmp_path):
    cfg, work, _ = poisoned_in_epoch_2
    copy = tmp_path / 'work'
    shutil.copytree(work, copy)
    (copy / 'last_checkpoint').write_text(str(copy / 'epoch_1.pth'))
    key = _poison(work / 'epoch_1.pth', copy / 'epoch_1.pth', 'running_var')
    proc = run_here([tool('train'), cfg, '--work-dir', str(copy), '--resume'],
               osp.dirname(cfg), check=False)
    line = _error_line(proc)
    assert f'{key} is non-finite' in line
    assert f'starts from ({copy / "epoch_1.pth"})' in line


def test_bidl_test_warns_about_nonfinite_scores(poisoned_in_epoch_2,
                                                tmp_path):
    cfg, work, _ = poisoned_in_epoch_2
    poisoned = tmp_path / 'poisoned.pth'
    _poison(work / 'epoch_1.pth', poisoned, 'head.')
    proc = run_here([tool('test'), cfg, str(poisoned), '--work-dir',
                str(tmp_path / 'test')], osp.dirname(cfg))
    warnings = [l for l in proc.stderr.splitlines()
                if l.startswith('bidl-test: warning:')]
    assert len(warnings) == 1, proc.stderr[-3000:]
    assert re.search(r'warning: \d+ samples got non-finite', warnings[0])
    assert re.search(r'accuracy/top1\s+0\.0000', proc.stdout), proc.stdout
