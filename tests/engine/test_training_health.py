"""TrainingHealthHook: silent and saturated spiking layers, a flat loss and
vanishing gradients are warned about once per layer, in a real Runner on a
tiny model, on the console of a ``bidl-train`` run and in TensorBoard; in a
test run, silent and saturated layers over the whole test set."""
import collections
import copy
import glob
import json
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from bidl_train.engine import build_runner
from bidl_train.engine.hooks.training_health import (ADVICE,
                                                     TrainingHealthHook)
from bidl_train.errors import ConfigError

from helpers.commands import run_here, tiny_config, tool


def model(neuron0=None, neuron2=None):
    """Conv2dLif -> Flatten -> FcLif -> linear head, on [T, 2, 8, 8]."""
    healthy = dict(type='LIF', alpha=0.5, theta=0.3)
    return dict(
        type='SpikingClassifier',
        backbone=dict(
            type='SpikingSequential',
            layers=[
                dict(type='Conv2dLif', in_channels=2, out_channels=4,
                     pool=2, neuron=neuron0 or healthy),
                dict(type='Flatten'),
                dict(type='FcLif', in_features=64, out_features=8,
                     neuron=neuron2 or healthy),
            ]),
        head=dict(type='SpikingClsHead', in_features=8, num_classes=4))


#: a threshold no input reaches: the layer never fires
SILENT = dict(type='LIF', alpha=0.5, theta=1e6)
#: a surrogate so sharp that its derivative underflows away from theta:
#: spikes flow forward, no gradient flows back through this layer
NO_GRADIENT = dict(type='LIF', alpha=0.5, theta=0.3,
                   surrogate=dict(type='sigmoid', alpha=1e5))

_runs = 0


def train(tmp_path, net, iters=6, lr=1e-2, optimizer=None, tensorboard=False,
          with_log_dir=False, **settings):
    """Train ``net`` for ``iters`` iterations on one fixed batch of 8
    samples with a TrainingHealthHook checking every iteration; returns the
    hook and the scalars the visualizer received (and the run's log dir
    with ``with_log_dir``). ``optimizer``: an optimizer config instead of
    Adam at ``lr``; ``tensorboard``: log to TensorBoard too."""
    global _runs
    _runs += 1  # mmengine reuses a visualizer of the same name
    settings = dict(dict(interval=1, patience=2, loss_window=3), **settings)
    hook = TrainingHealthHook(**settings)
    data = dict(type='SyntheticMotion', num_samples=8, T=4, size=8, blob=2)
    extra = {}
    if tensorboard:
        extra['visualizer'] = dict(
            type='Visualizer', name=f'health_vis_{_runs}',
            vis_backends=[dict(type='LocalVisBackend'),
                          dict(type='TensorboardVisBackend')])
    runner = Runner(
        model=copy.deepcopy(net),
        work_dir=str(tmp_path / 'work'),
        experiment_name=f'health_{_runs}',
        train_dataloader=dict(
            batch_size=8, num_workers=0, dataset=data,
            sampler=dict(type='InfiniteSampler', shuffle=False),
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=optimizer or dict(type='Adam', lr=lr)),
        train_cfg=dict(by_epoch=False, max_iters=iters),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1),
                           checkpoint=None),
        custom_hooks=[hook],
        default_scope='bidl_train',
        randomness=dict(seed=0),
        log_level='WARNING',
        **extra)
    runner.train()
    files = glob.glob(osp.join(runner.log_dir, 'vis_data', 'scalars.json'))
    with open(files[0]) as f:
        scalars = [json.loads(line) for line in f]
    if with_log_dir:
        return hook, scalars, runner.log_dir
    return hook, scalars


def warned(hook, condition=None):
    return [(c, layer) for c, layer, _ in hook.warnings
            if condition in (None, c)]


def test_healthy_model_gets_no_warning(tmp_path):
    hook, scalars = train(tmp_path, model())
    assert hook.warnings == []
    health = [s for s in scalars if 'health/warnings' in s]
    assert [s['step'] for s in health] == [1, 2, 3, 4, 5, 6]
    assert all(s['health/silent_layers'] == 0 for s in health)
    # the loss moved more than loss_tol over the window of 3 checks
    assert all(s['health/loss_rel_change'] > 1e-3 for s in health[2:])


def test_silent_layer_is_named_once(tmp_path):
    hook, scalars = train(tmp_path, model(neuron2=SILENT), iters=8)
    silent = warned(hook, 'silent')
    # patience=2, checked every iteration: one warning at iteration 2 for
    # the FcLif's neuron, not repeated over the 6 iterations after it
    assert silent == [('silent', 'backbone.2.neuron')]
    message = [m for c, _, m in hook.warnings if c == 'silent'][0]
    assert "spiking layer 'backbone.2.neuron' emitted no spike" in \
        message
    assert 'firing rate 0' in message
    assert 'lower its firing threshold' in message
    steps = {s['step']: s for s in scalars if 'health/silent_layers' in s}
    assert [steps[i]['health/silent_layers'] for i in range(1, 9)] == [1] * 8
    assert steps[8]['health/warnings'] >= 1
    # the healthy conv layer upstream is not called silent
    assert ('silent', 'backbone.0.neuron') not in silent


def test_flat_loss_with_zero_learning_rate(tmp_path):
    hook, scalars = train(tmp_path, model(), iters=5, lr=0.0)
    # lr=0 on a fixed batch: the same loss at every iteration; a window of
    # 3 checks is full at iteration 3, and the warning is not repeated
    assert warned(hook, 'flat_loss') == [('flat_loss', None)]
    message = [m for c, _, m in hook.warnings if c == 'flat_loss'][0]
    assert 'the training loss has not moved' in message
    assert 'over iterations 1-3' in message
    assert 'learning rate' in message
    changes = [s['health/loss_rel_change'] for s in scalars
               if 'health/loss_rel_change' in s]
    assert changes == [0.0, 0.0, 0.0]
    # nothing else is wrong with this model
    assert warned(hook) == [('flat_loss', None)]


def test_vanishing_gradient_names_the_layer(tmp_path):
    hook, scalars = train(tmp_path, model(neuron2=NO_GRADIENT), iters=4)
    vanishing = [layer for _, layer in warned(hook, 'vanishing_grad')]
    # every parameter below the sharp surrogate gets no gradient; the head
    # above it learns
    assert 'backbone.2.linear' in vanishing
    assert 'backbone.0.conv' in vanishing
    assert 'head.fc' not in vanishing
    message = [m for c, layer, m in hook.warnings
               if layer == 'backbone.0.conv'][0]
    assert "layer 'backbone.0.conv' has a vanishing gradient" in \
        message
    assert 'gradient norm' in message and 'surrogate' in message
    # spikes still flow: it is not a silent-layer case
    assert warned(hook, 'silent') == []
    assert max(s.get('health/vanishing_grad_layers', 0)
               for s in scalars) >= 2


def _fake_runner():
    logged = []
    logger = SimpleNamespace(
        warning=lambda m: logged.append(('WARNING', m)),
        info=lambda m: logged.append(('INFO', m)))
    return SimpleNamespace(iter=0, logger=logger), logged


def test_warns_again_only_after_recovery_and_relapse():
    hook = TrainingHealthHook(interval=1, patience=2)
    runner, logged = _fake_runner()
    dead, alive = (0.0, True), (0.2, True)  # (firing rate, spiking)
    for i, stats in enumerate([dead, dead, dead, dead, alive, dead, dead,
                               dead]):
        runner.iter = i
        hook._check_spikes(runner, {'net.lif': stats}, {})
    levels = [(level, i) for i, (level, _) in enumerate(logged)]
    # warned at the 2nd check, recovered at the 5th, warned again at the 7th
    assert [level for level, _ in levels] == ['WARNING', 'INFO', 'WARNING']
    assert 'iteration 2' in logged[0][1]
    assert 'recovered at iteration 5' in logged[1][1]
    assert 'iteration 7' in logged[2][1]


def _feed_losses(hook, runner, per_check):
    """Give ``hook`` one check per list of per-iteration losses."""
    runner.model = SimpleNamespace(training=True)
    for losses in per_check:
        for loss in losses:
            hook._add_loss(runner, dict(loss=loss))
            runner.iter += 1
        runner.iter -= 1  # the check runs in the last iteration
        hook._check_loss(runner, {})
        runner.iter += 1


def test_default_flat_loss_rule_on_a_stuck_and_a_slow_run():
    # the reported N-MNIST run: 2.3042 -> 2.3041 with batch-to-batch noise
    # of 1e-4, logged every 20 iterations; the defaults (window 5 checks,
    # loss_tol 1e-3) warn at the 5th check, iteration 100, and only there
    hook = TrainingHealthHook(interval=20)
    runner, logged = _fake_runner()
    stuck = [[2.3042 - 1e-4 * c / 9 + 1e-4 * (i % 2) for i in range(20)]
             for c in range(10)]
    _feed_losses(hook, runner, stuck)
    assert warned(hook) == [('flat_loss', None)]
    assert 'iterations 1-100' in logged[0][1]
    # a slow but real descent (2.30 -> 2.28 over 100 iterations) is not flat
    hook = TrainingHealthHook(interval=20)
    runner, logged = _fake_runner()
    _feed_losses(hook, runner, [[2.30 - 0.004 * c] * 20 for c in range(10)])
    assert warned(hook) == []


def test_saturated_layer():
    hook = TrainingHealthHook(interval=1, patience=1, saturated_rate=0.9)
    runner, logged = _fake_runner()
    full = (0.97, True)
    analog = (1.0, False)  # a LIAF layer: every output nonzero
    hook._check_spikes(runner, {'a.neuron': full, 'b.neuron': analog}, {})
    assert warned(hook) == [('saturated', 'a.neuron')]
    assert 'raise its firing threshold' in logged[0][1]
    assert 'firing rate 0.97' in logged[0][1]


def test_saturated_layer_in_training(tmp_path):
    # beta=10 is added to the membrane after every leak: from the second of
    # the 4 steps on, every neuron fires at every step (rate >= 0.75)
    always = dict(type='LIF', alpha=0.5, theta=0.3, beta=10.0)
    hook, scalars = train(tmp_path, model(neuron2=always), iters=3,
                          saturated_rate=0.7)
    assert warned(hook, 'saturated') == [('saturated', 'backbone.2.neuron')]
    assert [s['health/saturated_layers'] for s in scalars
            if 'health/saturated_layers' in s] == [1, 1, 1]


@pytest.mark.parametrize('settings, key', [
    (dict(patience=0), 'patience'),
    (dict(interval=1.5), 'interval'),
    (dict(loss_window=1), 'loss_window'),
    (dict(saturated_rate=1.5), 'saturated_rate'),
    (dict(grad_tol=-1), 'grad_tol'),
    (dict(checks=('silent', 'dead')), 'checks'),
])
def test_bad_settings_are_refused(settings, key):
    with pytest.raises(ConfigError, match=f'TrainingHealthHook.{key}'):
        TrainingHealthHook(**settings)


def _health_hooks(cfg_path, tmp_path, **options):
    cfg = Config.fromfile(cfg_path)
    cfg.merge_from_dict(options)
    cfg.work_dir = str(tmp_path / 'work')
    runner = build_runner(cfg)
    return [h for h in runner.hooks if isinstance(h, TrainingHealthHook)]


def test_on_by_default_configurable_and_can_be_turned_off(tmp_path):
    cfg = tiny_config(tmp_path)
    (hook, ) = _health_hooks(cfg, tmp_path)
    assert hook.patience == 3 and hook.interval is None
    (hook, ) = _health_hooks(cfg, tmp_path,
                             **{'default_hooks.health.patience': 7})
    assert hook.patience == 7
    assert _health_hooks(cfg, tmp_path, **{'default_hooks.health': None}) == []


def test_bidl_train_console_shows_the_warning(tmp_path):
    cfg = tiny_config(tmp_path, epochs=1)  # 2 iterations
    # every neuron's threshold out of reach: the whole network is silent
    proc = run_here([tool('train'), cfg, '--work-dir',
                     str(tmp_path / 'work'), '--cfg-options',
                     'model.backbone.neuron.theta=1000000.0',
                     'default_hooks.health.patience=2',
                     'default_hooks.checkpoint.save_best=None'], tmp_path)
    console = proc.stdout + proc.stderr
    lines = [line for line in console.splitlines()
             if 'TrainingHealthHook' in line and 'WARNING' in line]
    first = [line for line in lines if "'backbone.layers.0.neuron'" in line
             and 'emitted no spike' in line]
    # patience 2, one check per logged iteration (interval 1 in the tiny
    # config): warned once, at iteration 2
    assert len(first) == 1, console[-3000:]
    assert 'in 2 consecutive checks (every iteration) up to iteration 2' \
        in first[0]
    assert 'lower its firing threshold' in first[0]


# ----------------------------------------------------------------------
# validation: layers that fire in training but not in evaluation
# ----------------------------------------------------------------------
class _Visualizer:

    def __init__(self):
        self.scalars = []

    def add_scalars(self, scalars, step):
        self.scalars.append((step, dict(scalars)))


def _lif_runner():
    """A fake runner around one real LIF layer (theta 0.5, T=4) and the
    hook's training and validation calls on it."""
    from bidl_train.neurons import LIF
    runner, logged = _fake_runner()
    runner.model = torch.nn.Sequential(LIF(alpha=0.5, theta=0.5))
    runner.rank, runner.hooks, runner.epoch = 0, [], 0
    runner.visualizer = _Visualizer()
    runner._train_loop = SimpleNamespace()  # training has started
    return runner, logged


def _train_check(hook, runner, level):
    """One training check whose forward gets the constant input ``level``
    (above 0.5: every neuron fires at every step; 0: none)."""
    runner.model.train()
    hook.before_train_iter(runner, 0)
    runner.model(torch.full((4, 2, 3), float(level)))
    hook.after_train_iter(runner, 0, outputs={})
    runner.iter += 1


def _validate(hook, runner, *levels):
    """One validation epoch, one batch per input level."""
    runner.model.eval()
    hook.before_val_epoch(runner)
    for i, level in enumerate(levels):
        hook.before_val_iter(runner, i)
        runner.model(torch.full((4, 2, 3), float(level)))
        hook.after_val_iter(runner, i)
    hook.after_val_epoch(runner, metrics={})
    runner.epoch += 1


def test_silent_in_evaluation_warns_once_and_again_after_recovery():
    hook = TrainingHealthHook(interval=1, checks=('val_silent', ))
    runner, logged = _lif_runner()
    # fires in training, silent in the validation: warned at once
    _train_check(hook, runner, 0.4)  # u = 0.4, 0.6 (fires), 0.4, 0.6
    _validate(hook, runner, 0.0, 0.0)
    assert warned(hook) == [('val_silent', '0')]
    message = logged[0][1]
    assert "spiking layer '0' fires in training but emitted no spike in " \
        'evaluation mode over the whole validation after iteration 1' \
        in message
    assert 'training rate 0.5, evaluation rate 0' in message
    # the advice: BatchNorm statistics, a larger batch does not help
    assert 'The model has no BatchNorm.' in message
    assert "norm_stats='per_step'" in message
    assert 'a larger evaluation batch does not help' in message
    assert runner.visualizer.scalars[-1] == (
        0, {'health/val_rate/0': 0.0, 'health/warnings': 1})
    # still silent: not repeated
    _train_check(hook, runner, 0.4)
    _validate(hook, runner, 0.0)
    assert len(hook.warnings) == 1
    # one spike in one batch of the epoch is enough to recover
    _validate(hook, runner, 0.0, 0.4)
    assert logged[-1][0] == 'INFO'
    assert "'0' recovered at the validation after iteration 2" in \
        logged[-1][1]
    assert runner.visualizer.scalars[-1][1]['health/val_rate/0'] == \
        pytest.approx(0.25)  # 2 of 8 steps in one batch of two
    _validate(hook, runner, 0.0)
    assert warned(hook) == [('val_silent', '0'), ('val_silent', '0')]


def test_validation_is_judged_against_training_mode_checks_only():
    hook = TrainingHealthHook(interval=1, checks=('val_silent', ))
    runner, logged = _lif_runner()
    # validation before any training check: rates logged, nothing judged
    _validate(hook, runner, 0.0)
    assert runner.visualizer.scalars == [
        (0, {'health/val_rate/0': 0.0, 'health/warnings': 0})]
    # silent in training as well: the training 'silent' check's case
    _train_check(hook, runner, 0.0)
    _validate(hook, runner, 0.0)
    # a check in eval mode (a local co-learning phase) is not training
    runner.model.eval()
    hook.before_train_iter(runner, 0)
    runner.model(torch.full((4, 2, 3), 0.4))
    hook.after_train_iter(runner, 0, outputs={})
    _validate(hook, runner, 0.0)
    assert hook.warnings == []
    # the mean of the training checks since the last validation
    _train_check(hook, runner, 0.4)  # rate 0.5
    _train_check(hook, runner, 0.0)  # rate 0
    _validate(hook, runner, 0.0)
    assert 'training rate 0.25, evaluation rate 0' in logged[0][1]


def test_saturated_in_evaluation_only():
    hook = TrainingHealthHook(interval=1, saturated_rate=0.9,
                              checks=('val_saturated', ))
    runner, logged = _lif_runner()
    _train_check(hook, runner, 0.4)  # rate 0.5
    _validate(hook, runner, 1.0, 1.0)  # every neuron, every step
    assert warned(hook) == [('val_saturated', '0')]
    assert 'fired at a rate >= 0.9 in evaluation mode' in logged[0][1]
    assert 'training rate 0.5, evaluation rate 1' in logged[0][1]
    assert 'raise the layer' in logged[0][1]
    # saturated in training too: nothing new to say in validation
    hook = TrainingHealthHook(interval=1, saturated_rate=0.9,
                              checks=('val_saturated', ))
    runner, logged = _lif_runner()
    _train_check(hook, runner, 1.0)
    _validate(hook, runner, 1.0)
    assert hook.warnings == []


def test_batchnorm_layers_silent_only_in_evaluation(tmp_path):
    """The reported case: the tiny demo network after one epoch fires in
    every spiking layer in training mode, but its BatchNorms' running
    statistics leave layers 2 and 4 silent in evaluation mode."""
    from bidl_train.models.monitor import record_firing_rates
    cfg = Config.fromfile(tiny_config(tmp_path, epochs=1))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.default_hooks.checkpoint = None
    runner = build_runner(cfg)
    runner.train()
    (hook, ) = [h for h in runner.hooks if isinstance(h, TrainingHealthHook)]
    # independently: the trained model on the validation set, both modes
    model, rates = runner.model, {}
    for training in (True, False):
        model.train(training)
        totals = collections.Counter()
        with torch.no_grad(), record_firing_rates(model) as batch_rates:
            for batch in runner.val_dataloader:
                model.val_step(batch)
                totals.update({k: float(v.sum())
                               for k, v in batch_rates.items()})
        rates[training] = totals
    layers = ['backbone.layers.0.neuron', 'backbone.layers.1.neuron',
              'backbone.layers.2.neuron', 'backbone.layers.4.neuron']
    assert all(rates[True][name] > 0 for name in layers)
    silent = sorted(n for n in layers if rates[False][n] == 0)
    assert silent == ['backbone.layers.2.neuron', 'backbone.layers.4.neuron']

    assert warned(hook, 'val_silent') == [('val_silent', n) for n in silent]
    first, second = [m for c, _, m in hook.warnings if c == 'val_silent']
    assert 'after iteration 2' in first
    assert 'Its block normalises with BatchNorm (backbone.layers.2.norm)' \
        in first
    assert "earlier in the forward, 'backbone.layers.2.neuron' is silent " \
        'in evaluation too' in second
    files = glob.glob(osp.join(runner.log_dir, 'vis_data', 'scalars.json'))
    with open(files[0]) as f:
        val = [json.loads(line) for line in f if 'health/val_rate' in line]
    assert [s['step'] for s in val] == [1]  # epoch 1, as the val metrics
    for name in layers:
        assert (val[0][f'health/val_rate/{name}'] == 0) == (name in silent)


# ----------------------------------------------------------------------
# the reported N-MNIST run, in miniature
# ----------------------------------------------------------------------
def _text_summaries(log_dir, tag='health/warning'):
    """``[(step, text)]`` of the TensorBoard text summaries under
    ``log_dir``, read back with TensorBoard's own event reader."""
    from tensorboard.backend.event_processing.event_accumulator import \
        EventAccumulator
    (events, ) = glob.glob(osp.join(log_dir, 'vis_data', 'events.out.*'))
    reader = EventAccumulator(events, size_guidance={'tensors': 0})
    reader.Reload()
    return [(e.step, e.tensor_proto.string_val[0].decode())
            for e in reader.Tensors(f'{tag}/text_summary')]


def test_two_silent_layers_and_a_flat_loss_warn_on_console_and_tensorboard(
        tmp_path):
    """Issue #19's report: an N-MNIST run with two silent layers and a flat
    loss (2.3042 -> 2.3041) printed no warning. In miniature: neither
    spiking layer can reach its threshold, trained at the N-MNIST
    schedule's first learning rate (SGD, Nesterov momentum 0.9, lr 0.1
    warmed up from 0.01x: 1e-3) with the hook's default patience (3),
    loss window (5) and tolerance (1e-3), checked every iteration."""
    sgd = dict(type='SGD', lr=1e-3, momentum=0.9, nesterov=True)
    hook, scalars, log_dir = train(
        tmp_path, model(neuron0=SILENT, neuron2=SILENT), iters=6,
        optimizer=sgd, tensorboard=True, patience=3, loss_window=5,
        with_log_dir=True)
    # independently: a threshold of 1e6 is out of reach, so both layers
    # are silent; the rectangle surrogate is 0 that far from it, so every
    # parameter below the FcLif's neuron gets no gradient; the head sees
    # only zeros, so its weights do not change the loss, and a learning
    # rate of 1e-3 moves its bias too little to move the loss
    assert sorted(warned(hook), key=str) == sorted([
        ('silent', 'backbone.0.neuron'), ('silent', 'backbone.2.neuron'),
        ('vanishing_grad', 'backbone.0.conv'),
        ('vanishing_grad', 'backbone.0.norm'),
        ('vanishing_grad', 'backbone.2.linear'),
        ('flat_loss', None)], key=str)
    messages = {(c, layer): m for c, layer, m in hook.warnings}
    for layer in ('backbone.0.neuron', 'backbone.2.neuron'):
        assert 'in 3 consecutive checks (every iteration) up to iteration 3' \
            in messages[('silent', layer)]
        assert ADVICE['silent'] in messages[('silent', layer)]
    flat = messages[('flat_loss', None)]
    assert 'over iterations 1-5' in flat and ADVICE['flat_loss'] in flat
    assert 'silent layers now: backbone.0.neuron, backbone.2.neuron' in flat
    assert 'silent layers now: backbone.0.neuron, backbone.2.neuron, ' \
        'which pass no gradient: fix those first' in \
        messages[('vanishing_grad', 'backbone.0.conv')]
    assert [s['health/loss_rel_change'] < 1e-3 for s in scalars
            if 'health/loss_rel_change' in s] == [True, True]
    # the console: the run's logger prints what its log file holds
    (log_file, ) = glob.glob(osp.join(log_dir, '*.log'))
    logged = [line for line in open(log_file).read().splitlines()
              if 'WARNING - TrainingHealthHook' in line]
    assert [line.split('WARNING - ', 1)[1] for line in logged] == \
        [m for _, _, m in hook.warnings]
    # TensorBoard: each warning as text, at the iteration of its check
    texts = _text_summaries(log_dir)
    assert [text for _, text in texts] == [m for _, _, m in hook.warnings]
    assert [step for step, _ in texts] == [3] * 5 + [5]


# ----------------------------------------------------------------------
# test runs: the whole test set, judged at once (bidl-test's report)
# ----------------------------------------------------------------------
def run_test(tmp_path, net, evaluator=None, **settings):
    """``runner.test()`` of ``net`` (as built, no checkpoint) on 6 samples
    in batches of 4 with a TrainingHealthHook; returns the hook and the
    metrics."""
    global _runs
    _runs += 1
    hook = TrainingHealthHook(**settings)
    data = dict(type='SyntheticMotion', split='test', num_samples=6, T=4,
                size=8, blob=2)
    runner = Runner(
        model=copy.deepcopy(net),
        work_dir=str(tmp_path / 'work'),
        experiment_name=f'health_test_{_runs}',
        test_dataloader=dict(
            batch_size=4, num_workers=0, dataset=data,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate')),
        test_evaluator=evaluator or dict(type='Accuracy'),
        test_cfg=dict(),
        default_hooks=dict(checkpoint=None),
        custom_hooks=[hook],
        default_scope='bidl_train',
        randomness=dict(seed=0),
        log_level='WARNING')
    metrics = runner.test()
    return hook, metrics


def test_test_run_names_two_silent_layers(tmp_path):
    hook, _ = run_test(tmp_path, model(neuron0=SILENT, neuron2=SILENT))
    report = hook.test_report
    assert report['samples'] == 6 and report['saturated_rate'] == 0.95
    # a threshold of 1e6 is out of reach: nothing spikes
    assert report['layers'] == {
        name: dict(firing_rate=0.0, spiking=True, condition='silent')
        for name in ('backbone.0.neuron', 'backbone.2.neuron')}
    first, second = report['warnings']
    assert (first['condition'], first['layer']) == (
        'silent', 'backbone.0.neuron')
    assert (second['condition'], second['layer']) == (
        'silent', 'backbone.2.neuron')
    assert "spiking layer 'backbone.0.neuron' emitted no spike over the " \
        'whole test set (6 samples, evaluation mode; firing rate 0)' in \
        first['message']
    assert ADVICE['silent'] in first['message']
    # its Conv2dLif has a BatchNorm: the evaluation-mode advice follows
    assert 'Its block normalises with BatchNorm (backbone.0.norm)' in \
        first['message']
    assert ADVICE['val_silent'] in first['message']
    assert "earlier in the forward, 'backbone.0.neuron' is silent too: " \
        'fix that one first' in second['message']
    assert warned(hook) == [('silent', 'backbone.0.neuron'),
                            ('silent', 'backbone.2.neuron')]


def test_test_run_of_a_healthy_model_reports_the_rates(tmp_path):
    hook, metrics = run_test(
        tmp_path, model(),
        evaluator=[dict(type='Accuracy'), dict(type='FiringRate')])
    report = hook.test_report
    assert report['warnings'] == [] and hook.warnings == []
    # the same rates as the FiringRate metric's (a mean of per-sample
    # rates recorded by the model's predict; all samples the same size)
    assert set(report['layers']) == {'backbone.0.neuron',
                                     'backbone.2.neuron'}
    for name, layer in report['layers'].items():
        assert layer['condition'] is None and layer['spiking']
        assert 0 < layer['firing_rate'] < 0.95
        assert layer['firing_rate'] == pytest.approx(
            metrics[f'firing_rate/{name}'], rel=1e-6)


def test_test_run_names_a_saturated_layer(tmp_path):
    # beta=10 after every leak: every neuron fires from the 2nd of 4 steps
    always = dict(type='LIF', alpha=0.5, theta=0.3, beta=10.0)
    hook, _ = run_test(tmp_path, model(neuron2=always), saturated_rate=0.7)
    report = hook.test_report
    assert report['layers']['backbone.2.neuron']['condition'] == 'saturated'
    assert report['layers']['backbone.2.neuron']['firing_rate'] >= 0.75
    assert report['layers']['backbone.0.neuron']['condition'] is None
    (warning, ) = report['warnings']
    assert 'fired at a rate >= 0.7 over the whole test set' in \
        warning['message']
    assert ADVICE['saturated'] in warning['message']


def test_test_run_without_spike_checks_has_no_report(tmp_path):
    hook, _ = run_test(tmp_path, model(neuron0=SILENT),
                       checks=('flat_loss', 'vanishing_grad'))
    assert hook.test_report is None and hook.warnings == []
