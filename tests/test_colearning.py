"""Global-local schedules driven by the ColearningHook in a real Runner:
phase switching by epoch and by iteration, a local phase that changes no
global parameter, resume, and config errors."""
import copy

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

from bidl_train.engine import install_safe_loader, safe_load
from bidl_train.engine.hooks import ColearningHook, ForwardOnlyOptimWrapper
from bidl_train.errors import ConfigError
from bidl_train.learning import GlobalLocalSchedule, build_schedule

NEURON = dict(type='LIF', alpha=0.5, theta=0.3)
MODEL = dict(
    type='SpikingClassifier',
    backbone=dict(
        type='SpikingSequential',
        layers=[
            dict(type='Conv2dLif', in_channels=2, out_channels=4, pool=2,
                 neuron=NEURON),
            dict(type='Flatten'),
            dict(type='PlasticFcLif', in_features=64, out_features=8,
                 rule=dict(type='RewardSTDP', num_classes=4, group_size=2,
                           lr=0.05, pre_eligibility=1.0),
                 neuron=NEURON),
        ]),
    head=dict(type='PopulationClsHead', num_classes=4, group_size=2))
DATA = dict(type='SyntheticMotion', num_samples=16, T=4, size=8, blob=2)


def loader(shuffle=True):
    return dict(batch_size=8, num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=shuffle),
                collate_fn=dict(type='default_collate'), dataset=DATA)


class Recorder(Hook):
    """Snapshots of the model around every epoch and iteration."""

    priority = 'LOWEST'

    def __init__(self, hook):
        self.hook = hook
        self.iter_modes, self.epochs, self.wrappers = [], [], []

    @staticmethod
    def snapshot(runner):
        model = runner.model
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return state

    def before_train_epoch(self, runner):
        self._start = self.snapshot(runner)

    def after_train_epoch(self, runner):
        self.epochs.append((self.hook.phase.mode, self._start,
                            self.snapshot(runner)))

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.iter_modes.append(self.hook.phase.mode)
        self.wrappers.append(type(runner.optim_wrapper))


def make_runner(tmp_path, phases, train_cfg, resume=False, name='run'):
    install_safe_loader()
    hook = ColearningHook(schedule=dict(type='GlobalLocalSchedule',
                                        phases=phases))
    recorder = Recorder(hook)
    runner = Runner(
        model=copy.deepcopy(MODEL),
        work_dir=str(tmp_path / name),
        train_dataloader=loader(),
        optim_wrapper=dict(optimizer=dict(type='Adam', lr=1e-2)),
        train_cfg=train_cfg,
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=1),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[hook, recorder],
        default_scope='bidl_train',
        resume=resume,
        randomness=dict(seed=0),
        log_level='WARNING')
    return runner, hook, recorder


def changed(before, after, select):
    return [k for k in before if select(k)
            and not torch.equal(before[k], after[k])]


def is_local(key):
    return key.endswith('local_weight')


def test_phases_by_epoch_local_phase_freezes_global(tmp_path):
    phases = [dict(mode='global', epochs=1),
              dict(mode='local', epochs=1, layers=['backbone.2']),
              dict(mode='hybrid')]
    runner, hook, rec = make_runner(tmp_path, phases,
                                    dict(by_epoch=True, max_epochs=3))
    runner.train()
    assert [mode for mode, _, _ in rec.epochs] == ['global', 'local',
                                                   'hybrid']
    assert rec.iter_modes == ['global'] * 2 + ['local'] * 2 + ['hybrid'] * 2
    # global phase: BPTT changes weights, the local weight stays 0
    _, before, after = rec.epochs[0]
    assert changed(before, after, lambda k: 'weight' in k and not is_local(k))
    assert not changed(before, after, is_local)
    # local phase: no parameter and no buffer (BatchNorm statistics) of the
    # global network changes; only the local weight does
    _, before, after = rec.epochs[1]
    assert changed(before, after, lambda k: True) == \
        ['backbone.2.local_weight']
    assert rec.wrappers[2] is ForwardOnlyOptimWrapper
    # hybrid: both
    _, before, after = rec.epochs[2]
    assert changed(before, after, is_local)
    assert changed(before, after, lambda k: k == 'backbone.0.conv.weight')
    # the hook gives the run its optimizer wrapper back
    assert type(runner.optim_wrapper) is not ForwardOnlyOptimWrapper


def test_phases_by_iteration_and_layer_subsets(tmp_path):
    phases = [dict(mode='global', iters=2, layers=['backbone.2']),
              dict(mode='local', iters=3),
              dict(mode='global')]
    runner, hook, rec = make_runner(
        tmp_path, phases, dict(by_epoch=False, max_iters=6, val_interval=100))
    start = Recorder.snapshot(runner)
    runner.train()
    assert rec.iter_modes == ['global', 'global', 'local', 'local', 'local',
                              'global']
    # requires_grad is restored after training
    assert all(p.requires_grad for p in runner.model.parameters())
    end = Recorder.snapshot(runner)
    assert changed(start, end, is_local)


def test_global_phase_on_named_layers_only(tmp_path):
    phases = [dict(mode='global', epochs=1, layers=['backbone.2'])]
    runner, hook, rec = make_runner(tmp_path, phases,
                                    dict(by_epoch=True, max_epochs=1))
    runner.train()
    _, before, after = rec.epochs[0]
    assert not changed(before, after, lambda k: k.startswith('backbone.0.')
                       and 'running' not in k and 'num_batches' not in k)
    assert changed(before, after, lambda k: k == 'backbone.2.linear.weight')


def test_resume_restores_phase_and_local_state(tmp_path):
    phases = [dict(mode='global', epochs=1), dict(mode='local', epochs=3)]
    runner, hook, _ = make_runner(tmp_path, phases,
                                  dict(by_epoch=True, max_epochs=2))
    runner.train()
    saved_local = runner.model.backbone[2].local_weight.clone()
    assert saved_local.abs().sum() > 0
    ckpt = safe_load(tmp_path / 'run' / 'epoch_2.pth')  # weights_only
    assert ckpt['colearning']['phase'] == 1
    assert torch.equal(ckpt['colearning']['local']['backbone.2.local_weight'],
                       saved_local)

    resumed, hook2, rec2 = make_runner(tmp_path, phases,
                                       dict(by_epoch=True, max_epochs=3),
                                       resume=True)
    resumed.train()
    assert rec2.iter_modes == ['local', 'local']  # epoch 3 only
    mode, before, after = rec2.epochs[0]
    assert torch.equal(before['backbone.2.local_weight'], saved_local)
    assert changed(before, after, lambda k: True) == \
        ['backbone.2.local_weight']


def test_schedule_positions():
    sched = GlobalLocalSchedule([dict(mode='global', epochs=2),
                                 dict(mode='local', epochs=1),
                                 dict(mode='hybrid', epochs=1)])
    assert [sched.index_at(e) for e in range(6)] == [0, 0, 1, 2, 2, 2]
    assert sched.unit == 'epoch' and sched.total_length() == 4
    assert build_schedule(dict(phases=[dict(mode='local')])).unit == 'epoch'


@pytest.mark.parametrize('phases, message', [
    ([dict(mode='glob', epochs=1)], 'mode must be one of'),
    ([dict(mode='global', epochs=1), dict(mode='local', iters=2)],
     'mix epochs and iters'),
    ([dict(mode='global'), dict(mode='local', epochs=1)],
     'phases\\[0\\] needs epochs or iters'),
    ([dict(mode='global', epochs=0)], 'epochs must be a positive int'),
    ([dict(mode='global', epoch=1)], "unknown key\\(s\\) \\['epoch'\\]"),
    ([dict(mode='local', epochs=1, layers='backbone.9')],
     "layers names 'backbone.9'"),
    ([dict(mode='local', epochs=1, layers=['backbone.0'])],
     'touches no plastic layer'),
])
def test_schedule_errors(tmp_path, phases, message):
    with pytest.raises(ConfigError, match=message):
        runner, _, _ = make_runner(tmp_path, phases,
                                   dict(by_epoch=True, max_epochs=1))
        runner.train()


def test_hook_needs_a_schedule(tmp_path):
    install_safe_loader()
    runner = Runner(model=copy.deepcopy(MODEL), work_dir=str(tmp_path),
                    train_dataloader=loader(),
                    optim_wrapper=dict(optimizer=dict(type='Adam', lr=1e-2)),
                    train_cfg=dict(by_epoch=True, max_epochs=1),
                    custom_hooks=[dict(type='ColearningHook')],
                    default_scope='bidl_train', log_level='WARNING')
    with pytest.raises(ConfigError, match='top-level colearning'):
        runner.train()


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
        hook = ColearningHook(schedule=dict(phases=[dict(mode='local')]))
        hook.schedule = build_schedule(hook._schedule_cfg)
        hook._plastic = {'layer': layer}
        hook._average_over_ranks(hook.schedule.phases[0])
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
