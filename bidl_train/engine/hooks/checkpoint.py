"""mmengine's CheckpointHook, pruning old checkpoints only after a save.

mmengine 0.10.7 deletes the oldest of ``max_keep_ckpts`` checkpoints *before*
writing the new one. When that write fails (a full or read-only disk), the
run is left with one checkpoint fewer than promised, and with
``max_keep_ckpts=1`` with none at all to resume from. This hook writes first
and prunes after, so a failed save leaves every earlier checkpoint in place.
"""
from collections import deque

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook

from bidl_train.registry import HOOKS


@HOOKS.register_module()
class SaveThenPruneCheckpointHook(CheckpointHook):
    """``CheckpointHook`` that removes old checkpoints after a successful
    save (same arguments; ``backend_args`` defaults to the atomic writer,
    so a kill while saving never leaves a torn file)."""

    def __init__(self, *args, backend_args=None, **kwargs):
        if backend_args is None:
            backend_args = dict(backend='atomic_local')
        super().__init__(*args, backend_args=backend_args, **kwargs)

    def before_train(self, runner):
        super().before_train(runner)
        if self.max_keep_ckpts > 0:
            # mmengine's deque has maxlen=max_keep_ckpts: appending the
            # newest step would drop the oldest from it unseen and _prune
            # would never find more than max_keep_ckpts to delete
            self.keep_ckpt_ids = deque(self.keep_ckpt_ids)

    def _save_checkpoint_with_step(self, runner, step, meta):
        keep = self.max_keep_ckpts
        if keep > 0 and not (self.keep_ckpt_ids
                             and self.keep_ckpt_ids[-1] == step):
            # recorded before saving, as mmengine does, so the checkpoint's
            # own message hub lists it and a resumed run prunes it later
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        self.max_keep_ckpts = -1  # the parent only saves
        try:
            super()._save_checkpoint_with_step(runner, step, meta)
        finally:
            self.max_keep_ckpts = keep
        if keep > 0:
            self._prune(runner, keep)

    def _prune(self, runner, keep):
        while len(self.keep_ckpt_ids) > keep:
            old = self.keep_ckpt_ids.popleft()
            path = self.file_backend.join_path(self.out_dir,
                                               self.filename_tmpl.format(old))
            if is_main_process() and self.file_backend.isfile(path):
                self.file_backend.remove(path)
        runner.message_hub.update_info('keep_ckpt_ids',
                                       list(self.keep_ckpt_ids))
