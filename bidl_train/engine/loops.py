"""Global-local co-learning as a training loop.

A config selects it as its training loop::

    train_cfg = dict(
        type='GlobalLocalLoop',
        max_epochs=7,
        phases=[
            dict(mode='global', epochs=5),                 # BPTT only
            dict(mode='local', epochs=2,                   # on-chip learning
                 layers=['backbone.3'], data=dict(...)),
        ])

See :mod:`bidl_train.learning.schedule` for the phases (modes ``global``,
``local``, ``hybrid``; lengths in ``epochs`` or ``iters``; ``layers``;
``data``). The older top-level ``colearning=dict(type='GlobalLocalSchedule',
phases=[...])`` key still works: :func:`bidl_train.engine.build_runner`
turns it into this loop.

What the loop does, and why it is a loop and not a hook:

* It owns the iteration. In a phase that trains globally it calls
  ``model.train_step`` as mmengine's loops do. In a local phase it runs the
  forward pass only, in eval mode (BatchNorm statistics and dropout frozen:
  the on-chip scenario), under ``torch.no_grad()``, and never touches the
  optimizer wrapper, so nothing global changes and the optimizer state is
  saved as it is.
* It owns its data loaders: a phase with its own ``data`` iterates a loader
  built for it when the phase begins (``self.dataloader`` is the loader of
  the running phase).
* Labels reach the local rules with the batch: the classifier's training
  forward gets them in ``data_samples`` and opens
  :func:`~bidl_train.learning.teacher.teaching` around its backbone.
* At a phase start it freezes (``requires_grad``) the parameters outside the
  phase's ``layers``; during its own training steps only, it switches the
  local learning of the persistent plastic layers on inside the phase's
  ``layers`` and off elsewhere. Validation between epochs never learns
  locally. After training, ``requires_grad`` is as it was.
* Under DDP, after every step that learned locally, the persistent local
  weights (and persistent rule state) are averaged over the ranks: every
  rank started the step from the same weights, so the average is the start
  plus the mean of the ranks' updates.
* Checkpoints: the persistent local tensors are buffers of their layers and
  are saved once, in the state dict. The phase follows from the epoch (or
  iteration) mmengine saves (the message hub also records the running
  phase, for the log); a phase loader is rebuilt with the run's seed and
  the epoch the uninterrupted run gave its sampler, so ``--resume`` inside
  a phase iterates the same data in the same order.
  Checkpoints written by the former ``ColearningHook`` also hold
  ``checkpoint['colearning']``: a copy of those same buffers taken when the
  state dict was, plus the position. They load unchanged: the state dict
  already holds every tensor of the copy, so the key is not read.

Under DDP with a global phase that names only some ``layers``, set
``find_unused_parameters=True`` (frozen parameters get no gradient).
"""
import contextlib
import copy
import logging

import torch
import torch.distributed as torch_dist
from mmengine.dist import get_world_size
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner.base_loop import BaseLoop
from mmengine.runner.loops import _InfiniteDataloaderIterator

from bidl_train.errors import ConfigError
from bidl_train.learning import GlobalLocalSchedule, PlasticLayer
from bidl_train.registry import LOOPS

__all__ = ['GlobalLocalLoop', 'average_over_ranks']

#: message-hub key of the running phase (saved in every checkpoint)
PHASE_KEY = 'colearning/phase'


@LOOPS.register_module()
class GlobalLocalLoop(BaseLoop):
    """Train through a sequence of global, local and hybrid phases (see the
    module docstring).

    Args:
        runner, dataloader: given by the Runner (``dataloader`` is the run's
            ``train_dataloader``, used by phases without ``data``).
        phases (list[dict]): the phases, as
            :class:`~bidl_train.learning.GlobalLocalSchedule` takes them.
        max_epochs (int): length of the run when the phases count epochs.
        max_iters (int): length of the run when the phases count iters.
        val_begin (int): first epoch (iteration) after which to validate.
        val_interval (int): validate every so many epochs (default 1) or
            iterations (default 1000).
    """

    def __init__(self, runner, dataloader, phases, max_epochs=None,
                 max_iters=None, val_begin=1, val_interval=None):
        super().__init__(runner, dataloader)
        self.schedule = GlobalLocalSchedule(phases)
        self.by_epoch = self._check_length(max_epochs, max_iters)
        if self.by_epoch:
            self._max_epochs = max_epochs
            self._max_iters = max_epochs * len(self.dataloader)
        else:
            self._max_epochs = 1  # as mmengine's IterBasedTrainLoop
            self._max_iters = max_iters
        self._epoch = 0
        self._iter = 0
        self.val_begin = val_begin
        self.val_interval = val_interval or (1 if self.by_epoch else 1000)
        self.stop_training = False  # set by EarlyStoppingHook
        self.runner.visualizer.dataset_meta = getattr(
            self.dataloader.dataset, 'metainfo', None)

        model = self._model()
        self.plastic = {name: module for name, module in model.named_modules()
                        if isinstance(module, PlasticLayer)}
        self.schedule.check_layers([n for n, _ in model.named_modules()],
                                   list(self.plastic))
        self.phase_index = None
        self._default_loader = self.dataloader
        self._loaders = {}  # phase index -> its own loader
        self._iterators = {}  # id(loader) -> infinite iterator (iter unit)
        # loaders that ran (or were told) an epoch: see _use_loader
        self._started = {id(self.dataloader)}
        self._requires_grad = {}

    # ------------------------------------------------------------------
    # mmengine's loop interface
    # ------------------------------------------------------------------
    @property
    def max_epochs(self):
        return self._max_epochs

    @property
    def max_iters(self):
        return self._max_iters

    @property
    def epoch(self):
        return self._epoch

    @property
    def iter(self):
        return self._iter

    @property
    def phase(self):
        """The running :class:`~bidl_train.learning.Phase`."""
        return self.schedule.phases[self.phase_index]

    def run(self):
        runner = self.runner
        runner.call_hook('before_train')
        self._requires_grad = {name: p.requires_grad
                               for name, p in self._model().named_parameters()}
        self._log_start()
        if self.by_epoch:
            while self._epoch < self._max_epochs and not self.stop_training:
                self.run_epoch()
                self._maybe_validate(self._epoch, self._max_epochs)
        else:
            self._run_iters()
        for name, param in self._model().named_parameters():
            param.requires_grad_(self._requires_grad[name])
        runner.call_hook('after_train')
        return runner.model

    def run_epoch(self):
        """One epoch of the phase running at this epoch."""
        self.runner.call_hook('before_train_epoch')
        # after the epoch's hooks, as when this was a hook (see _use_loader)
        self._enter(self.schedule.index_at(self._epoch))
        for idx, data_batch in enumerate(self.dataloader):
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1

    def _run_iters(self):
        """Iteration-counted phases: the whole run is one big epoch."""
        self.runner.call_hook('before_train_epoch')
        if self._iter > 0:
            self._skip_trained_batches()
        while self._iter < self._max_iters and not self.stop_training:
            self._enter(self.schedule.index_at(self._iter))
            data_batch = next(self._iterator(self.dataloader))
            self.run_iter(self._iter, data_batch)
            self._maybe_validate(self._iter, self._max_iters)
        self.runner.call_hook('after_train_epoch')

    def run_iter(self, idx, data_batch):
        """One batch: a training step (global, hybrid) or a forward pass
        (local), with local learning as the phase says."""
        runner, phase = self.runner, self.phase
        # a local phase runs as on a chip: BatchNorm statistics and dropout
        # frozen (mmengine's loops set train mode; so do global phases)
        runner.model.train(phase.mode != 'local')
        runner.call_hook('before_train_iter', batch_idx=idx,
                         data_batch=data_batch)
        with self._local_learning(phase):
            if phase.trains_global:
                outputs = runner.model.train_step(
                    data_batch, optim_wrapper=runner.optim_wrapper)
            else:
                outputs = self._forward_only(data_batch)
        if phase.learns_locally:
            average_over_ranks(self._learning_layers(phase))
        runner.call_hook('after_train_iter', batch_idx=idx,
                         data_batch=data_batch, outputs=outputs)
        self._iter += 1

    # ------------------------------------------------------------------
    # phases
    # ------------------------------------------------------------------
    def _enter(self, index):
        """Make phase ``index`` the running one (no-op if it is)."""
        if index == self.phase_index:
            return
        self.phase_index = index
        phase = self.phase
        for name, param in self._model().named_parameters():
            trains = phase.trains_global and phase.touches(name)
            param.requires_grad_(self._requires_grad[name] and trains)
        self._use_loader(self._loader_for(phase), self._phase_start(phase))
        self.runner.message_hub.update_info(PHASE_KEY, index)
        self.runner.logger.info(f'co-learning: entering {phase.describe()}')

    def _phase_start(self, phase):
        return self.schedule.starts[phase.index]

    def _learning_layers(self, phase):
        """The persistent plastic layers that learn in ``phase``."""
        return [layer for name, layer in self.plastic.items()
                if layer.plasticity == 'persistent' and phase.touches(name)]

    @contextlib.contextmanager
    def _local_learning(self, phase):
        """During one training step: persistent plastic layers learn inside
        the phase's layers in a local or hybrid phase, never otherwise
        (a layer's own ``learning`` setting is back afterwards)."""
        learning = set(map(id, self._learning_layers(phase))) \
            if phase.learns_locally else set()
        with _learning_set(self.plastic.values(),
                           lambda layer: id(layer) in learning):
            yield

    def _maybe_validate(self, position, end):
        if (self.runner.val_loop is None or position < self.val_begin
                or (position % self.val_interval != 0 and position != end)):
            return
        # evaluation never changes weights: no local learning
        with _learning_set(self.plastic.values(), lambda layer: False):
            self.runner.val_loop.run()

    def _forward_only(self, data_batch):
        """The forward pass of a training step, without gradients, backward
        or optimizer step; returns the step's log variables (its loss)."""
        model = self.runner.model
        module = self._model()
        with torch.no_grad():
            data = module.data_preprocessor(data_batch, True)
            if isinstance(data, dict):
                losses = model(**data, mode='loss')
            else:
                losses = model(*data, mode='loss')
        _, log_vars = module.parse_losses(losses)
        return log_vars

    # ------------------------------------------------------------------
    # data
    # ------------------------------------------------------------------
    def _loader_for(self, phase):
        if phase.data is None:
            return self._default_loader
        if phase.index not in self._loaders:
            self._loaders[phase.index] = self._build_loader(phase)
        return self._loaders[phase.index]

    def _build_loader(self, phase):
        """The phase's own loader; its sampler shuffles with the run's seed
        (restored from the checkpoint on resume), its workers are seeded as
        those of the run's loaders."""
        cfg = copy.deepcopy(phase.data)
        cfg.setdefault('worker_init_fn', dict(type='bidl_train.seed_worker'))
        return self.runner.build_dataloader(cfg, seed=self.runner.seed)

    def _use_loader(self, loader, phase_start):
        """Iterate ``loader`` from now on.

        DistSamplerSeedHook has told the previous loader this epoch's
        number already. A loader built for a phase that starts now keeps
        its sampler's fresh epoch 0 (as when co-learning was a hook: the
        numbers of earlier runs stay the same); any other loader (the
        run's loader coming back after a phase with its own data, a phase
        loader rebuilt when resuming inside its phase) gets this epoch's
        number, as the hook would have given it. Either way an interrupted
        and resumed run shuffles as the uninterrupted one.
        """
        if loader is self.dataloader:
            return
        self.dataloader = loader
        if not self.by_epoch:
            return
        fresh = id(loader) not in self._started
        if not (fresh and self._epoch == phase_start):
            sampler = getattr(loader, 'sampler', None)
            if hasattr(sampler, 'set_epoch'):
                sampler.set_epoch(self._epoch)
        self._started.add(id(loader))

    def _iterator(self, loader):
        """One endless iterator per loader: a phase that comes back to a
        loader continues where the earlier phase left it."""
        if id(loader) not in self._iterators:
            self._iterators[id(loader)] = _InfiniteDataloaderIterator(loader)
        return self._iterators[id(loader)]

    def _skip_trained_batches(self):
        """Resume (iteration unit): advance each loader past the batches
        the interrupted run took from it, as mmengine's IterBasedTrainLoop
        does for its single loader."""
        print_log(f'Advance the data loaders {self._iter} steps to skip '
                  'data that has already been trained', logger='current',
                  level=logging.WARNING)
        for position in range(self._iter):
            phase = self.schedule.phase_at(position)
            next(self._iterator(self._loader_for(phase)))

    # ------------------------------------------------------------------
    # set-up
    # ------------------------------------------------------------------
    def _model(self):
        model = self.runner.model
        return model.module if is_model_wrapper(model) else model

    def _check_length(self, max_epochs, max_iters):
        """Whether the run counts epochs; refuses a length in the wrong
        unit, a missing one, and phases that would start after the end."""
        units = {p.unit for p in self.schedule.phases} - {None}
        if (max_epochs is None) == (max_iters is None):
            unit = units.pop() if units else 'epoch'
            raise ConfigError(f'train_cfg: GlobalLocalLoop needs max_{unit}s '
                              '(the length of the whole run), and only one '
                              'of max_epochs and max_iters')
        by_epoch = max_epochs is not None
        key, length = ('max_epochs', max_epochs) if by_epoch else (
            'max_iters', max_iters)
        if isinstance(length, bool) or not isinstance(length, int) or \
                length < 1:
            raise ConfigError(f'train_cfg.{key} must be a positive int, got '
                              f'{length!r}')
        unit = 'epoch' if by_epoch else 'iter'
        if units and units != {unit}:
            other = 'max_iters' if by_epoch else 'max_epochs'
            raise ConfigError(
                f'train_cfg: the phases count {units.pop()}s but the run '
                f'gives {key}; give {other} instead')
        for phase, start in zip(self.schedule.phases, self.schedule.starts):
            if start >= length:
                raise ConfigError(
                    f'train_cfg.phases[{phase.index}] starts after {start} '
                    f'{unit}s, but {key}={length}: it would never run')
        return by_epoch

    def _log_start(self):
        logger = self.runner.logger
        position = self._epoch if self.by_epoch else self._iter
        saved = self.runner.message_hub.get_info(PHASE_KEY)
        if position > 0 and saved is not None:
            unit = 'epoch' if self.by_epoch else 'iter'
            index = self.schedule.index_at(position)
            logger.info(f'co-learning: resuming after {position} {unit}s in '
                        f'phase {index} (the checkpoint was saved in phase '
                        f'{saved})')
        logger.info(f'co-learning: {self.schedule!r}')


@contextlib.contextmanager
def _learning_set(layers, learns):
    """Set ``learning`` of every persistent layer to ``learns(layer)`` for
    the ``with`` block; each layer's own setting is back afterwards."""
    layers = [layer for layer in layers if layer.plasticity == 'persistent']
    saved = [layer.learning for layer in layers]
    for layer in layers:
        layer.learning = bool(learns(layer))
    try:
        yield
    finally:
        for layer, value in zip(layers, saved):
            layer.learning = value


def average_over_ranks(layers):
    """Average the persistent local tensors of ``layers`` over the ranks of
    a distributed run (no-op in a single process)."""
    world = get_world_size()
    if world <= 1 or not torch_dist.is_initialized():
        return
    for layer in layers:
        for tensor in layer.local_state_dict().values():
            torch_dist.all_reduce(tensor)
            tensor.div_(world)


def colearning_to_loop(cfg):
    """Turn the older co-learning config into the loop, in place.

    ``colearning=dict(type='GlobalLocalSchedule', phases=[...])`` (with or
    without ``custom_hooks=[dict(type='ColearningHook')]``, which may carry
    the schedule as ``schedule=``) becomes ``train_cfg=dict(
    type='GlobalLocalLoop', phases=[...], max_epochs=...)``, keeping the
    run's length and validation settings. A loop config inheriting
    ``by_epoch`` from a base schedule loses it: mmengine refuses it beside
    a loop ``type``, and the loop counts in its phases' unit.
    """
    from bidl_train.learning import build_schedule
    hooks = list(cfg.get('custom_hooks') or [])
    old_hooks = [h for h in hooks
                 if isinstance(h, dict) and h.get('type') == 'ColearningHook']
    spec = cfg.get('colearning')
    for hook in old_hooks:
        spec = spec or hook.get('schedule')
    train = dict(cfg.get('train_cfg') or {})
    if old_hooks:
        cfg.custom_hooks = [h for h in hooks if h not in old_hooks]
    if not spec:
        if old_hooks:
            raise ConfigError(
                'ColearningHook: no schedule; give the phases to the loop: '
                "train_cfg=dict(type='GlobalLocalLoop', phases=[...], "
                'max_epochs=...)')
        if train.get('type') == 'GlobalLocalLoop' and 'by_epoch' in train:
            train.pop('by_epoch')
            cfg.train_cfg = train
        return
    build_schedule(spec)  # errors name the colearning key
    kind = train.get('type')
    if kind == 'GlobalLocalLoop':
        raise ConfigError(
            'colearning: train_cfg already is a GlobalLocalLoop; give the '
            'phases once, in train_cfg.phases, and remove colearning')
    if kind is not None:
        raise ConfigError(
            f'colearning: runs as its own training loop, but train_cfg '
            f'names the loop {kind!r}; remove train_cfg.type or colearning')
    by_epoch = train.pop('by_epoch', True)
    if by_epoch:
        train.pop('max_iters', None)
    train.update(type='GlobalLocalLoop', phases=list(spec['phases']))
    cfg.train_cfg = train
    cfg.pop('colearning', None)
