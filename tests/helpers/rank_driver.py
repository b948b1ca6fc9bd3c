"""``bidl-train`` as one rank of a test's hand-started distributed job
whose short process-group timeout applies from the end of its first epoch
on, for the lost-rank tests of tests/engine/test_runtime_faults.py.

    python tests/helpers/rank_driver.py MEETING_DIR <bidl-train arguments>

Those tests give the process group a timeout of seconds, so that a frozen
rank is given up on quickly, and stop a rank once epoch 1 is saved. The
same timeout also bounds every collective of the start-up (rendezvous,
DDP's first broadcast, the first iterations), and on a loaded machine (a
test run with ``-n 2``, other jobs) two ranks reach them many seconds
apart: Python, torch and mmengine take seconds to import, and rank 0 alone
writes the config dump and the logs. Here the ranks first announce
themselves in MEETING_DIR and wait (up to :data:`START_UP_S`) until all
``WORLD_SIZE`` have; the process group starts with a timeout of
:data:`START_UP_S`, and once the hooks after the first training epoch have
run (epoch 1 saved) it gets the timeout ``bidl-train`` asked for (from
``env_cfg.dist_cfg.timeout``). Everything else is
``bidl_train.cli.train.main``, what the installed ``bidl-train`` calls.
"""
import datetime
import os
import sys
import time

import torch.distributed
from mmengine.runner import Runner
from torch.distributed.distributed_c10d import _set_pg_timeout

#: seconds the ranks may take to start, and to finish epoch 1, under load
START_UP_S = 300


def meet(folder, rank, world_size, seconds=START_UP_S):
    """Announce ``rank`` in ``folder``; return once ``world_size`` ranks
    have."""
    open(os.path.join(folder, f'rank{rank}'), 'w').close()
    deadline = time.monotonic() + seconds
    while len(os.listdir(folder)) < world_size:
        if time.monotonic() > deadline:
            raise SystemExit(f'rank_driver: rank {rank} saw only '
                             f'{os.listdir(folder)} in {folder} after '
                             f'{seconds} s')
        time.sleep(0.02)


def main(argv):
    folder, args = argv[0], argv[1:]
    os.makedirs(folder, exist_ok=True)
    asked = {}  # the timeout bidl-train gave init_process_group
    init = torch.distributed.init_process_group
    call_hook = Runner.call_hook

    def init_for_start_up(*pargs, timeout, **kwargs):
        meet(folder, int(os.environ['RANK']), int(os.environ['WORLD_SIZE']))
        asked['timeout'] = timeout
        start_up = datetime.timedelta(seconds=START_UP_S)
        return init(*pargs, timeout=max(timeout, start_up), **kwargs)

    def call_hook_then_shorten(runner, fn_name, **kwargs):
        call_hook(runner, fn_name, **kwargs)
        if fn_name == 'after_train_epoch' and 'timeout' in asked:
            _set_pg_timeout(asked.pop('timeout'))

    # bidl_train.engine.dist looks init_process_group up on the module
    # when it calls it; every loop calls hooks through Runner.call_hook
    torch.distributed.init_process_group = init_for_start_up
    Runner.call_hook = call_hook_then_shorten
    from bidl_train.cli.train import main as train
    return train(args)


if __name__ == '__main__':
    raise SystemExit(main(sys.argv[1:]))
