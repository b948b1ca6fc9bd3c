"""``bidl-train`` as one rank of a test's hand-started distributed job,
entering the rendezvous only once every rank's process is up, for the
lost-rank tests of tests/engine/test_runtime_faults.py.

    python tests/helpers/rank_driver.py MEETING_DIR <bidl-train arguments>

Those tests give the process group a short timeout (seconds) so that a
frozen rank is given up on quickly. That timeout also bounds the
rendezvous, and two ranks started together can reach it several seconds
apart on a loaded machine (a test run with ``-n 2``, other jobs): Python,
torch and mmengine take seconds to import. Each rank here first announces
itself in MEETING_DIR and waits (up to :data:`MEETING_S`) until all
``WORLD_SIZE`` ranks have; then ``bidl_train.cli.train.main`` (what the
installed ``bidl-train`` calls) runs unchanged, with the configured timeout
on every step from the rendezvous on.
"""
import os
import sys
import time

import torch.distributed

#: how long a rank waits for the others to be up (start-up under load)
MEETING_S = 300


def meet(folder, rank, world_size, seconds=MEETING_S):
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
    init = torch.distributed.init_process_group

    def init_once_all_are_up(*pargs, **kwargs):
        meet(folder, int(os.environ['RANK']), int(os.environ['WORLD_SIZE']))
        return init(*pargs, **kwargs)

    # bidl_train.engine.dist looks the function up on the module when it
    # calls it
    torch.distributed.init_process_group = init_once_all_are_up
    from bidl_train.cli.train import main as train
    return train(args)


if __name__ == '__main__':
    raise SystemExit(main(sys.argv[1:]))
