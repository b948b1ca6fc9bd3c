"""TrainingHealthHook: silent and saturated spiking layers, a flat loss and
vanishing gradients are warned about once per layer, in a real Runner on a
tiny model, and on the console of a ``bidl-train`` run."""
import copy
import glob
import json
import os.path as osp
from types import SimpleNamespace

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from bidl_train.engine import build_runner
from bidl_train.engine.hooks.training_health import TrainingHealthHook
from bidl_train.errors import ConfigError

from test_commands import run, tiny_config, tool


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


def train(tmp_path, net, iters=6, lr=1e-2, **settings):
    """Train ``net`` for ``iters`` iterations on one fixed batch of 8
    samples with a TrainingHealthHook checking every iteration; returns the
    hook and the scalars the visualizer received."""
    global _runs
    _runs += 1  # mmengine reuses a visualizer of the same name
    settings = dict(dict(interval=1, patience=2, loss_window=3), **settings)
    hook = TrainingHealthHook(**settings)
    data = dict(type='SyntheticMotion', num_samples=8, T=4, size=8, blob=2)
    runner = Runner(
        model=copy.deepcopy(net),
        work_dir=str(tmp_path / 'work'),
        experiment_name=f'health_{_runs}',
        train_dataloader=dict(
            batch_size=8, num_workers=0, dataset=data,
            sampler=dict(type='InfiniteSampler', shuffle=False),
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='Adam', lr=lr)),
        train_cfg=dict(by_epoch=False, max_iters=iters),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1),
                           checkpoint=None),
        custom_hooks=[hook],
        default_scope='bidl_train',
        randomness=dict(seed=0),
        log_level='WARNING')
    runner.train()
    files = glob.glob(osp.join(runner.log_dir, 'vis_data', 'scalars.json'))
    with open(files[0]) as f:
        scalars = [json.loads(line) for line in f]
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
    proc = run([tool('train'), cfg, '--work-dir', str(tmp_path / 'work'),
                '--cfg-options', 'model.backbone.neuron.theta=1000000.0',
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
