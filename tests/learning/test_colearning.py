"""Global-local co-learning as a training loop (GlobalLocalLoop) in a real
Runner: phase switching by epoch and by iteration, a local phase that
changes no global parameter and no optimizer state, no local learning in
validation, resume inside the schedule (bit for bit), checkpoints written
by the former hook, the older ``colearning=`` config key, and config
errors."""
import copy
import os.path as osp
import shutil

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from bidl_train.cli.common import load_config
from bidl_train.engine import build_runner, install_safe_loader, safe_load
from bidl_train.engine.loops import (GlobalLocalLoop, average_over_ranks,
                                     colearning_to_loop)
from bidl_train.errors import ConfigError
from bidl_train.learning import GlobalLocalSchedule, build_schedule

from helpers.commands import REPO, run, tool

NEURON = dict(type='LIF', alpha=0.5, theta=0.3)
REWARD = dict(type='RewardSTDP', num_classes=4, group_size=2, lr=0.05,
              pre_eligibility=1.0)
MODEL = dict(
    type='SpikingClassifier',
    backbone=dict(
        type='SpikingSequential',
        layers=[
            dict(type='Conv2dLif', in_channels=2, out_channels=4, pool=2,
                 neuron=NEURON),
            dict(type='Flatten'),
            dict(type='PlasticFcLif', in_features=64, out_features=8,
                 rule=REWARD, neuron=NEURON),
        ]),
    head=dict(type='PopulationClsHead', num_classes=4, group_size=2))
DATA = dict(type='SyntheticMotion', num_samples=16, T=4, size=8, blob=2)


def loader(shuffle=True, dataset=DATA):
    return dict(batch_size=8, num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=shuffle),
                collate_fn=dict(type='default_collate'), dataset=dataset)


class Recorder(Hook):
    """Snapshots of the model around every epoch, the phase, train mode
    and optimizer wrapper of every iteration."""

    priority = 'LOWEST'

    def __init__(self):
        self.iter_modes, self.training, self.wrappers = [], [], []
        self.epochs, self.val_changes = [], []

    @staticmethod
    def snapshot(runner):
        return {k: v.detach().clone()
                for k, v in runner.model.state_dict().items()}

    def before_train_epoch(self, runner):
        self._start = self.snapshot(runner)

    def after_train_epoch(self, runner):
        self.epochs.append((runner.train_loop.phase.mode, self._start,
                            self.snapshot(runner)))

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.iter_modes.append(runner.train_loop.phase.mode)
        self.training.append(runner.model.training)
        self.wrappers.append(runner.optim_wrapper)

    def before_val_epoch(self, runner):
        self._val_start = self.snapshot(runner)

    def after_val_epoch(self, runner, metrics=None):
        self.val_changes.append(changed(self._val_start,
                                        self.snapshot(runner), is_local))


def make_runner(tmp_path, phases, resume=False, name='run', model=MODEL,
                hooks=(), val=False, **length):
    install_safe_loader()
    recorder = Recorder()
    extra = dict(val_dataloader=loader(shuffle=False),
                 val_evaluator=dict(type='Accuracy'), val_cfg=dict()) \
        if val else {}
    runner = Runner(
        model=copy.deepcopy(model),
        work_dir=str(tmp_path / name),
        train_dataloader=loader(),
        optim_wrapper=dict(optimizer=dict(type='Adam', lr=1e-2)),
        train_cfg=dict(type='GlobalLocalLoop', phases=phases, **length),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=1),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='EpochSeedHook'), recorder, *hooks],
        default_scope='bidl_train',
        resume=resume,
        randomness=dict(seed=0),
        log_level='WARNING',
        **extra)
    return runner, recorder


def changed(before, after, select):
    return [k for k in before if select(k)
            and not torch.equal(before[k], after[k])]


def is_local(key):
    return key.endswith('local_weight')


def test_phases_by_epoch_local_phase_freezes_global(tmp_path):
    phases = [dict(mode='global', epochs=1),
              dict(mode='local', epochs=1, layers=['backbone.2']),
              dict(mode='hybrid')]
    runner, rec = make_runner(tmp_path, phases, max_epochs=3)
    runner.train()
    assert isinstance(runner.train_loop, GlobalLocalLoop)
    assert [mode for mode, _, _ in rec.epochs] == ['global', 'local',
                                                   'hybrid']
    assert rec.iter_modes == ['global'] * 2 + ['local'] * 2 + ['hybrid'] * 2
    # a local phase runs in eval mode (frozen BatchNorm, as on a chip)
    assert rec.training == [True] * 2 + [False] * 2 + [True] * 2
    # global phase: BPTT changes weights, the local weight stays 0
    _, before, after = rec.epochs[0]
    assert changed(before, after, lambda k: 'weight' in k and not is_local(k))
    assert not changed(before, after, is_local)
    # local phase: no parameter and no buffer (BatchNorm statistics) of the
    # global network changes; only the local weight does
    _, before, after = rec.epochs[1]
    assert changed(before, after, lambda k: True) == \
        ['backbone.2.local_weight']
    # hybrid: both
    _, before, after = rec.epochs[2]
    assert changed(before, after, is_local)
    assert changed(before, after, lambda k: k == 'backbone.0.conv.weight')
    # one optimizer wrapper throughout: nothing is swapped
    assert all(w is runner.optim_wrapper for w in rec.wrappers)


def test_local_phase_leaves_the_optimizer_state(tmp_path):
    phases = [dict(mode='global', epochs=1), dict(mode='local', epochs=1)]
    runner, _ = make_runner(tmp_path, phases, max_epochs=2)
    runner.train()
    after_global = safe_load(tmp_path / 'run' / 'epoch_1.pth')['optimizer']
    after_local = safe_load(tmp_path / 'run' / 'epoch_2.pth')['optimizer']
    assert after_global['state'].keys() == after_local['state'].keys()
    for key, state in after_global['state'].items():
        for name, value in state.items():
            assert torch.equal(value, after_local['state'][key][name]), name


def test_phases_by_iteration_and_layer_subsets(tmp_path):
    phases = [dict(mode='global', iters=2, layers=['backbone.2']),
              dict(mode='local', iters=3),
              dict(mode='global')]
    runner, rec = make_runner(tmp_path, phases, max_iters=6)
    start = Recorder.snapshot(runner)
    runner.train()
    assert rec.iter_modes == ['global', 'global', 'local', 'local', 'local',
                              'global']
    # train mode comes back after an iteration-counted local phase
    assert rec.training == [True, True, False, False, False, True]
    # requires_grad is restored after training
    assert all(p.requires_grad for p in runner.model.parameters())
    end = Recorder.snapshot(runner)
    assert changed(start, end, is_local)


def test_global_phase_on_named_layers_only(tmp_path):
    phases = [dict(mode='global', epochs=1, layers=['backbone.2'])]
    runner, rec = make_runner(tmp_path, phases, max_epochs=1)
    runner.train()
    _, before, after = rec.epochs[0]
    assert not changed(before, after, lambda k: k.startswith('backbone.0.')
                       and 'running' not in k and 'num_batches' not in k)
    assert changed(before, after, lambda k: k == 'backbone.2.linear.weight')


def test_validation_never_learns_locally(tmp_path):
    """A layer set to learn always (``learning=True``, a rule needing no
    labels) learns in the local phase but not in validation, and keeps its
    own setting after training."""
    model = copy.deepcopy(MODEL)
    model['backbone']['layers'][2].update(
        rule=dict(type='Hebbian', lr=0.05), learning=True)
    phases = [dict(mode='local', epochs=2)]
    runner, rec = make_runner(tmp_path, phases, model=model, val=True,
                              max_epochs=2)
    runner.train()
    assert len(rec.val_changes) == 2 and rec.val_changes == [[], []]
    assert all(changed(b, a, is_local) for _, b, a in rec.epochs)
    assert runner.model.backbone[2].learning is True


def _state(path):
    return safe_load(path)['state_dict']


def _assert_same_weights(expected, got):
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key


class StopAfter(Hook):
    """Ends a run after an epoch's checkpoint, as a kill would."""

    priority = 'LOWEST'  # after CheckpointHook

    def __init__(self, epochs):
        self.epochs = epochs

    def after_train_epoch(self, runner):
        if runner.epoch + 1 == self.epochs:
            raise KeyboardInterrupt


SHUFFLED_LOCAL = [dict(mode='global', epochs=1),
                  dict(mode='local', epochs=2, layers=['backbone.2'],
                       data=loader(dataset=dict(DATA, seed=7))),
                  dict(mode='hybrid', epochs=1)]


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp('uninterrupted')
    runner, _ = make_runner(tmp_path, SHUFFLED_LOCAL, max_epochs=4)
    runner.train()
    return tmp_path / 'run'


@pytest.mark.parametrize('stopped_after', [1, 2, 3],
                         ids=['into-local', 'inside-local', 'into-hybrid'])
def test_resume_inside_the_schedule_is_bit_identical(tmp_path, uninterrupted,
                                                     stopped_after):
    """Stop after epoch 1 (the local phase with its own shuffled data comes
    next), 2 (inside it) or 3 (back to the run's loader), resume: the final
    weights equal the uninterrupted run's bit for bit."""
    runner, _ = make_runner(tmp_path, SHUFFLED_LOCAL, max_epochs=4,
                            hooks=[StopAfter(stopped_after)])
    with pytest.raises(KeyboardInterrupt):
        runner.train()
    work = tmp_path / 'run'
    assert not (work / f'epoch_{stopped_after + 1}.pth').exists()
    saved = safe_load(work / f'epoch_{stopped_after}.pth')
    assert 'colearning' not in saved  # saved once: buffers in state_dict
    assert 'backbone.2.local_weight' in saved['state_dict']
    phase = GlobalLocalSchedule(SHUFFLED_LOCAL).index_at(stopped_after - 1)
    assert saved['message_hub']['runtime_info']['colearning/phase'] == phase

    resumed, rec = make_runner(tmp_path, SHUFFLED_LOCAL, max_epochs=4,
                               resume=True)
    resumed.train()
    expected_modes = ['global', 'local', 'local', 'hybrid'][stopped_after:]
    assert [mode for mode, _, _ in rec.epochs] == expected_modes
    _assert_same_weights(_state(uninterrupted / 'epoch_4.pth'),
                         _state(work / 'epoch_4.pth'))


def test_checkpoint_of_the_former_hook_resumes(tmp_path, uninterrupted):
    """A checkpoint holding ``checkpoint['colearning']`` (the former hook's
    copy of the local state) resumes as the one without it."""
    runner, _ = make_runner(tmp_path, SHUFFLED_LOCAL, max_epochs=4,
                            hooks=[StopAfter(2)])
    with pytest.raises(KeyboardInterrupt):
        runner.train()
    work = tmp_path / 'run'
    path = work / 'epoch_2.pth'
    ckpt = torch.load(path, weights_only=False)
    ckpt['colearning'] = dict(
        phase=1, unit='epoch', position=2,
        local={k: v.clone() for k, v in ckpt['state_dict'].items()
               if k.startswith('backbone.2.') and 'local' in k})
    assert ckpt['colearning']['local']
    torch.save(ckpt, path)
    resumed, _ = make_runner(tmp_path, SHUFFLED_LOCAL, max_epochs=4,
                             resume=True)
    resumed.train()
    _assert_same_weights(_state(uninterrupted / 'epoch_4.pth'),
                         _state(work / 'epoch_4.pth'))
    assert 'colearning' not in safe_load(work / 'epoch_4.pth')


def test_schedule_positions():
    sched = GlobalLocalSchedule([dict(mode='global', epochs=2),
                                 dict(mode='local', epochs=1),
                                 dict(mode='hybrid', epochs=1)])
    assert [sched.index_at(e) for e in range(6)] == [0, 0, 1, 2, 2, 2]
    assert sched.unit == 'epoch' and sched.total_length() == 4
    assert build_schedule(dict(phases=[dict(mode='local')])).unit == 'epoch'


@pytest.mark.parametrize('phases, length, message', [
    ([dict(mode='glob', epochs=1)], {}, 'train_cfg.phases\\[0\\].mode must'),
    ([dict(mode='global', epochs=1), dict(mode='local', iters=2)], {},
     'mix epochs and iters'),
    ([dict(mode='global'), dict(mode='local', epochs=1)], {},
     'phases\\[0\\] needs epochs or iters'),
    ([dict(mode='global', epochs=0)], {}, 'epochs must be a positive int'),
    ([dict(mode='global', epoch=1)], {}, "unknown key\\(s\\) \\['epoch'\\]"),
    ([dict(mode='local', epochs=1, layers='backbone.9')], {},
     "layers names 'backbone.9'"),
    ([dict(mode='local', epochs=1, layers=['backbone.0'])], {},
     'touches no plastic layer'),
    ([dict(mode='global', epochs=1)], dict(max_iters=4),
     'the phases count epochs but the run gives max_iters'),
    ([dict(mode='global', iters=1)], dict(max_epochs=4),
     'the phases count iters but the run gives max_epochs'),
    ([dict(mode='global', epochs=1)], dict(max_epochs=None),
     'needs max_epochs'),
    ([dict(mode='global', epochs=1)], dict(max_epochs=1, max_iters=3),
     'only one of max_epochs and max_iters'),
    ([dict(mode='global', epochs=1)], dict(max_epochs=1.5),
     'max_epochs must be a positive int'),
    ([dict(mode='global', epochs=2), dict(mode='local', epochs=1)],
     dict(max_epochs=2), 'phases\\[1\\] starts after 2 epochs, but '
     'max_epochs=2: it would never run'),
])
def test_schedule_errors(tmp_path, phases, length, message):
    if not length:
        length = dict(max_epochs=1)
    length = {k: v for k, v in length.items() if v is not None}
    with pytest.raises(ConfigError, match=message):
        runner, _ = make_runner(tmp_path, phases, **length)
        runner.train()


# -- the command line: bidl-train --deterministic, resume inside the schedule
def _tiny_demo(tmp_path, shifted=True):
    """configs/demo/colearning_shift.py shrunk to seconds: 2 global + 2
    local epochs on 32 samples, every checkpoint kept."""
    text = f"""
_base_ = [{osp.join(REPO, 'configs', 'demo', 'colearning_shift.py')!r}]
_small = dict(type='SyntheticMotion', split='train', num_samples=32)
_loader = dict(batch_size=8, num_workers=0,
               sampler=dict(type='DefaultSampler', shuffle=True),
               collate_fn=dict(type='default_collate'))
train_dataloader = dict(batch_size=8, dataset=_small)
val_dataloader = dict(dataset=dict(dataset=dict(num_samples=20)))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=4, phases=[
    dict(mode='global', epochs=2),
    dict(mode='local', epochs=2, layers=['backbone.3'],
         data=dict(_loader, dataset=dict(type='ShiftedDataset',
                                         dataset=_small,
                                         swap_polarity={shifted})))])
default_hooks = dict(checkpoint=dict(max_keep_ckpts=-1),
                     logger=dict(interval=1))
"""
    path = tmp_path / 'tiny_colearning.py'
    path.write_text(text)
    return str(path)


@pytest.fixture(scope='module')
def cli_reference(tmp_path_factory):
    """The uninterrupted bidl-train --deterministic run of _tiny_demo."""
    tmp_path = tmp_path_factory.mktemp('cli')
    cfg = _tiny_demo(tmp_path)
    run([tool('train'), cfg, '--work-dir', str(tmp_path / 'ref'),
         '--deterministic'], tmp_path)
    return cfg, tmp_path / 'ref'


@pytest.mark.slow
@pytest.mark.parametrize('stopped_after', [2, 3],
                         ids=['into-local', 'inside-local'])
def test_cli_resume_inside_the_schedule_is_bit_identical(
        tmp_path, cli_reference, stopped_after):
    """bidl-train --deterministic, uninterrupted, against a run that ends
    right after the checkpoint of epoch 2 (the local phase with its own
    shuffled data begins next) or 3 (inside it), i.e. what a SIGKILL then
    leaves behind (as in test_reliability), resumed with --resume: the
    last checkpoints hold the same weights bit for bit."""
    cfg, ref = cli_reference
    killed = tmp_path / 'killed'
    killed.mkdir()
    name = f'epoch_{stopped_after}.pth'
    shutil.copy(ref / name, killed / name)
    proc = run([tool('train'), cfg, '--work-dir', str(killed),
                '--deterministic', '--resume'], tmp_path)
    saved_in = 0 if stopped_after == 2 else 1
    assert (f'co-learning: resuming after {stopped_after} epochs in phase 1 '
            f'(the checkpoint was saved in phase {saved_in})') in (
                proc.stdout + proc.stderr)
    _assert_same_weights(_state(ref / 'epoch_4.pth'),
                         _state(killed / 'epoch_4.pth'))


def test_build_runner_runs_the_older_key_as_the_loop(tmp_path):
    cfg = load_config(_tiny_demo(tmp_path))
    phases = cfg.train_cfg.pop('phases')
    cfg.train_cfg = dict(by_epoch=True, max_epochs=4, val_interval=1)
    cfg.colearning = dict(type='GlobalLocalSchedule', phases=phases)
    cfg.work_dir = str(tmp_path / 'work')
    runner = build_runner(cfg)
    loop = runner.train_loop
    assert isinstance(loop, GlobalLocalLoop) and loop.max_epochs == 4
    assert [p.mode for p in loop.schedule.phases] == ['global', 'local']
    assert loop.schedule.phases[1].layers == ('backbone.3', )


# -- the older config key: colearning=dict(...) -----------------------------
OLD_PHASES = [dict(mode='global', epochs=2), dict(mode='local', epochs=1)]


def test_colearning_key_becomes_the_loop():
    cfg = Config(dict(
        colearning=dict(type='GlobalLocalSchedule', phases=OLD_PHASES),
        train_cfg=dict(by_epoch=True, max_epochs=3, val_interval=1),
        custom_hooks=[dict(type='EpochSeedHook'),
                      dict(type='ColearningHook')]))
    colearning_to_loop(cfg)
    assert cfg.train_cfg == dict(type='GlobalLocalLoop', phases=OLD_PHASES,
                                 max_epochs=3, val_interval=1)
    assert 'colearning' not in cfg
    assert cfg.custom_hooks == [dict(type='EpochSeedHook')]

    by_iter = Config(dict(
        custom_hooks=[dict(type='ColearningHook', schedule=dict(
            phases=[dict(mode='local', iters=2)]))],
        train_cfg=dict(by_epoch=False, max_iters=4, val_interval=2)))
    colearning_to_loop(by_iter)
    assert by_iter.train_cfg == dict(
        type='GlobalLocalLoop', phases=[dict(mode='local', iters=2)],
        max_iters=4, val_interval=2)
    assert by_iter.custom_hooks == []


def test_loop_config_loses_an_inherited_by_epoch():
    """mmengine refuses ``by_epoch`` beside a loop type; a base schedule's
    ``train_cfg`` brings one."""
    cfg = Config(dict(train_cfg=dict(type='GlobalLocalLoop', by_epoch=True,
                                     max_epochs=3, phases=OLD_PHASES)))
    colearning_to_loop(cfg)
    assert cfg.train_cfg == dict(type='GlobalLocalLoop', max_epochs=3,
                                 phases=OLD_PHASES)


@pytest.mark.parametrize('cfg, message', [
    (dict(colearning=dict(phases=OLD_PHASES),
          train_cfg=dict(type='GlobalLocalLoop', max_epochs=3,
                         phases=OLD_PHASES)), 'give the phases once'),
    (dict(colearning=dict(phases=OLD_PHASES),
          train_cfg=dict(type='IterBasedTrainLoop', max_iters=3)),
     "names the loop 'IterBasedTrainLoop'"),
    (dict(colearning=dict(phases=[dict(mode='glob')]), train_cfg={}),
     'colearning.phases\\[0\\].mode must be one of'),
    (dict(colearning=dict(type='Schedule', phases=OLD_PHASES)),
     "colearning.type 'Schedule' is not a registered schedule"),
    (dict(custom_hooks=[dict(type='ColearningHook')],
          train_cfg=dict(by_epoch=True, max_epochs=1)),
     'ColearningHook: no schedule'),
])
def test_colearning_key_errors(cfg, message):
    with pytest.raises(ConfigError, match=message):
        colearning_to_loop(Config(cfg))


# -- distributed ------------------------------------------------------------
def _average_worker(rank, world, port, results):
    import torch.distributed as dist
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                            rank=rank, world_size=world)
    try:
        from bidl_train.learning import PlasticFcLif
        layer = PlasticFcLif(2, 2, rule=dict(type='BCM'))
        with torch.no_grad():
            layer.local_weight.fill_(float(rank + 1))  # rank 0: 1, rank 1: 2
            layer.rule_theta.fill_(float(10 * rank))
        average_over_ranks([layer])
        results[rank] = (layer.local_weight.clone(), layer.rule_theta.clone())
    finally:
        dist.destroy_process_group()


def test_local_updates_are_averaged_over_ranks():
    import socket

    import torch.multiprocessing as mp
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(_average_worker, args=(2, port, results), nprocs=2)
    for rank in range(2):
        weight, theta = results[rank]
        assert torch.equal(weight, torch.full((2, 2), 1.5))
        assert torch.equal(theta, torch.full((2, ), 5.0))
