"""The hook that drives global-local co-learning schedules.

Enable it in a config with a top-level schedule and the hook::

    colearning = dict(type='GlobalLocalSchedule', phases=[
        dict(mode='global', epochs=6),
        dict(mode='local', epochs=2, layers=['backbone.layers.4']),
    ])
    custom_hooks = [dict(type='ColearningHook')]

(``ColearningHook(schedule=dict(...))`` takes the schedule directly
instead.) See :mod:`bidl_train.learning.schedule` for the phase semantics.
What the hook does at each point of the run:

* phase start (``before_train_epoch`` for epoch phases, after the previous
  iteration for iteration phases): freeze the parameters outside the
  phase's layers (``requires_grad``), switch local learning of persistent
  plastic layers on or off, swap the training data loader when the phase
  names its own ``data``, and for a local phase replace the optimizer
  wrapper by :class:`ForwardOnlyOptimWrapper` (forward under
  ``torch.no_grad()``, no backward, no step; it shares the optimizer and
  its state, so checkpoints are unchanged);
* every iteration of a phase with local learning: hand the batch labels to
  plastic layers whose rule needs a teacher (reward-modulated STDP); in a
  local phase put the model in eval mode (frozen BatchNorm statistics, no
  dropout or training noise: the on-chip scenario);
* after every such iteration under DDP: average the persistent local
  weights (and persistent rule state) over the ranks. All ranks start an
  iteration from the same local weights, so the average of the weights is
  the start plus the average of the ranks' local updates;
* validation and test: no local learning (evaluation never changes
  weights);
* checkpoints: the phase position and every persistent local tensor are
  stored under ``checkpoint['colearning']`` (plain tensors, ints and
  strings, loadable with ``weights_only=True``) and restored on load, so
  ``--resume`` continues in the right phase with the learned local state.

Under DDP with a global phase that names only some ``layers``, set
``find_unused_parameters=True`` (frozen parameters get no gradient).
"""
from contextlib import contextmanager

import torch
import torch.distributed as torch_dist
from mmengine.dist import get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper
from mmengine.runner.loops import _InfiniteDataloaderIterator

from bidl_train.errors import CheckpointError, ConfigError
from bidl_train.learning import PlasticLayer, build_schedule
from bidl_train.registry import HOOKS

__all__ = ['ColearningHook', 'ForwardOnlyOptimWrapper']

CHECKPOINT_KEY = 'colearning'


class ForwardOnlyOptimWrapper(OptimWrapper):
    """An optimizer wrapper for local-only phases: the forward pass runs
    under ``torch.no_grad()`` and nothing is backpropagated or stepped.

    It wraps the run's optimizer wrapper and delegates its state, so saving
    and resuming a checkpoint during a local phase keeps the optimizer state
    (momenta, loss scaler) exactly.
    """

    def __init__(self, wrapped):
        super().__init__(optimizer=wrapped.optimizer)
        self.wrapped = wrapped

    @contextmanager
    def optim_context(self, model):
        with torch.no_grad():
            yield

    def update_params(self, loss, step_kwargs=None, zero_kwargs=None):
        """No backward, no step: global weights stay as they are."""

    def backward(self, loss, **kwargs):
        """No backward in a local phase."""

    def step(self, **kwargs):
        """No optimizer step in a local phase."""

    def zero_grad(self, **kwargs):
        """Nothing to clear."""

    def state_dict(self):
        return self.wrapped.state_dict()

    def load_state_dict(self, state_dict):
        self.wrapped.load_state_dict(state_dict)


@HOOKS.register_module()
class ColearningHook(Hook):
    """Drive a :class:`~bidl_train.learning.GlobalLocalSchedule` (see the
    module docstring).

    Args:
        schedule (dict, optional): the schedule config; default: the
            run config's top-level ``colearning`` key.
    """

    priority = 'NORMAL'

    def __init__(self, schedule=None):
        self._schedule_cfg = schedule
        self.schedule = None
        self.phase_index = None
        self._plastic = {}
        self._requires_grad = {}
        self._loaders = {}
        self._original_loader = None
        self._original_optim = None
        self._eval_flags = None
        self._loaded = None

    # ------------------------------------------------------------------
    # set-up
    # ------------------------------------------------------------------
    @staticmethod
    def _model(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def _ensure_schedule(self, runner):
        if self.schedule is not None:
            return
        spec = self._schedule_cfg
        if spec is None:
            cfg = getattr(runner, 'cfg', None)
            spec = cfg.get('colearning') if cfg is not None else None
        if spec is None:
            raise ConfigError(
                'ColearningHook: no schedule; add a top-level '
                "colearning=dict(type='GlobalLocalSchedule', phases=[...]) "
                'to the config or give ColearningHook(schedule=...)')
        self.schedule = build_schedule(spec)
        model = self._model(runner)
        self._plastic = {
            name: m
            for name, m in model.named_modules()
            if isinstance(m, PlasticLayer)
        }
        self.schedule.check_layers([n for n, _ in model.named_modules()],
                                   list(self._plastic))
        self._requires_grad = {
            name: p.requires_grad
            for name, p in model.named_parameters()
        }

    def before_train(self, runner):
        self._ensure_schedule(runner)
        loop = runner.train_loop
        self._original_loader = loop.dataloader
        self._original_optim = runner.optim_wrapper
        if isinstance(self._original_optim, OptimWrapper) is False:
            raise ConfigError(
                'ColearningHook: needs a single OptimWrapper (optim_wrapper='
                f'dict(optimizer=...)), got {type(runner.optim_wrapper)}')
        position = runner.epoch if self.schedule.unit == 'epoch' else \
            runner.iter
        if self._loaded is not None:
            runner.logger.info(
                f'co-learning: checkpoint was saved in phase '
                f'{self._loaded.get("phase")} at {self._loaded.get("unit")} '
                f'{self._loaded.get("position")}; resuming at '
                f'{self.schedule.unit} {position}')
        runner.logger.info(f'co-learning: {self.schedule!r}')
        self._enter(runner, self.schedule.index_at(position))

    def after_train(self, runner):
        """Give the run back its optimizer wrapper, data and gradients."""
        if self._original_optim is not None:
            runner.optim_wrapper = self._original_optim
        model = self._model(runner)
        for name, param in model.named_parameters():
            param.requires_grad_(self._requires_grad.get(name, True))
        self._set_loader(runner, self._original_loader)
        for layer in self._plastic.values():
            layer.set_teacher(None)

    # ------------------------------------------------------------------
    # phases
    # ------------------------------------------------------------------
    @property
    def phase(self):
        return self.schedule.phases[self.phase_index]

    def _enter(self, runner, index):
        if index == self.phase_index:
            return
        self.phase_index = index
        phase = self.phase
        model = self._model(runner)
        for name, param in model.named_parameters():
            trains = phase.trains_global and phase.touches(name)
            param.requires_grad_(self._requires_grad[name] and trains)
        for name, layer in self._plastic.items():
            if layer.plasticity == 'persistent':
                layer.learning = phase.learns_locally and phase.touches(name)
        if phase.mode == 'local':
            runner.optim_wrapper = ForwardOnlyOptimWrapper(
                self._original_optim)
        else:
            runner.optim_wrapper = self._original_optim
        self._set_loader(runner, self._loader_for(runner, phase))
        runner.logger.info(f'co-learning: entering {phase.describe()}')

    def _loader_for(self, runner, phase):
        if phase.data is None:
            return self._original_loader
        if phase.index not in self._loaders:
            seed = getattr(runner, 'seed', None)
            self._loaders[phase.index] = runner.build_dataloader(
                phase.data, seed=seed)
        return self._loaders[phase.index]

    @staticmethod
    def _set_loader(runner, loader):
        loop = runner.train_loop
        if loader is None or loop.dataloader is loader:
            return
        loop.dataloader = loader
        if hasattr(loop, 'dataloader_iterator'):
            loop.dataloader_iterator = _InfiniteDataloaderIterator(loader)

    def before_train_epoch(self, runner):
        if self.schedule.unit == 'epoch':
            self._enter(runner, self.schedule.index_at(runner.epoch))

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        phase = self.phase
        if phase.mode == 'local':
            runner.model.eval()
        if not phase.learns_locally:
            return
        labels = _labels(data_batch)
        for name, layer in self._plastic.items():
            if layer.rule.needs_teacher and phase.touches(name):
                layer.set_teacher(labels)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        phase = self.phase
        if phase.learns_locally:
            for layer in self._plastic.values():
                layer.set_teacher(None)
            self._average_over_ranks(phase)
        if self.schedule.unit == 'iter':
            # the next batch is fetched after this hook: switch now
            self._enter(runner, self.schedule.index_at(runner.iter + 1))

    def _average_over_ranks(self, phase):
        world = get_world_size()
        if world <= 1 or not torch_dist.is_initialized():
            return
        for name, layer in self._plastic.items():
            if layer.plasticity != 'persistent' or not phase.touches(name):
                continue
            for tensor in layer.local_state_dict().values():
                torch_dist.all_reduce(tensor)
                tensor.div_(world)

    # ------------------------------------------------------------------
    # evaluation: never learn
    # ------------------------------------------------------------------
    def _freeze_local(self):
        self._eval_flags = {n: l.learning for n, l in self._plastic.items()}
        for layer in self._plastic.values():
            if layer.plasticity == 'persistent':
                layer.learning = False
            layer.set_teacher(None)

    def _restore_local(self):
        for name, flag in (self._eval_flags or {}).items():
            self._plastic[name].learning = flag
        self._eval_flags = None

    def before_val_epoch(self, runner):
        self._freeze_local()

    def after_val_epoch(self, runner, metrics=None):
        self._restore_local()

    def before_test_epoch(self, runner):
        if not self._plastic:
            model = self._model(runner)
            self._plastic = {n: m for n, m in model.named_modules()
                             if isinstance(m, PlasticLayer)}
        self._freeze_local()

    def after_test_epoch(self, runner, metrics=None):
        self._restore_local()

    # ------------------------------------------------------------------
    # checkpoints
    # ------------------------------------------------------------------
    def before_save_checkpoint(self, runner, checkpoint):
        model = self._model(runner)
        local = {}
        for name, module in model.named_modules():
            if isinstance(module, PlasticLayer):
                for key, tensor in module.local_state_dict().items():
                    local[f'{name}.{key}'] = tensor.detach().cpu().clone()
        unit = self.schedule.unit if self.schedule is not None else 'epoch'
        checkpoint[CHECKPOINT_KEY] = dict(
            phase=-1 if self.phase_index is None else int(self.phase_index),
            unit=unit,
            position=int(runner.epoch if unit == 'epoch' else runner.iter),
            local=local)

    def after_load_checkpoint(self, runner, checkpoint):
        saved = checkpoint.get(CHECKPOINT_KEY)
        if saved is None:
            return
        model = self._model(runner)
        modules = dict(model.named_modules())
        with torch.no_grad():
            for full_name, tensor in saved.get('local', {}).items():
                layer_name, _, key = full_name.rpartition('.')
                layer = modules.get(layer_name)
                if not isinstance(layer, PlasticLayer) or \
                        key not in layer.local_state_dict():
                    raise CheckpointError(
                        f'checkpoint holds local state {full_name!r} but the '
                        'model has no such plastic layer tensor')
                target = layer.local_state_dict()[key]
                if target.shape != tensor.shape:
                    raise CheckpointError(
                        f'checkpoint local state {full_name!r} has shape '
                        f'{tuple(tensor.shape)}, the model '
                        f'{tuple(target.shape)}')
                target.copy_(tensor)
        self._loaded = {k: v for k, v in saved.items() if k != 'local'}


def _labels(data_batch):
    """The labels of a collated batch as a tensor, or None."""
    if isinstance(data_batch, dict):
        labels = data_batch.get('label')
        if labels is None and isinstance(data_batch.get('data_samples'),
                                         dict):
            labels = data_batch['data_samples'].get('label')
        if labels is not None:
            return torch.as_tensor(labels).long()
    return None
