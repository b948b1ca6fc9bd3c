"""Throughput of the event readers and representations (events per second).

Writes one stream of ``--events`` random events (128x128 unless the format
limits it) in each supported format to a temporary folder, then times
``read_events`` and each representation on one core. Example::

    python tools/benchmark_data.py --events 1000000 --frames 16
"""
import argparse
import os
import tempfile
import time

import numpy as np
import torch

from bidl_train.datasets.io import (make_events, read_events, write_aedat31,
                                    write_aedat2_dvs128, write_nmnist_bin)
from bidl_train.datasets.representations import (events_to_frames,
                                                 events_to_time_surface,
                                                 events_to_voxel_grid)


def best_of(fn, repeat):
    """Smallest wall time of ``repeat`` calls (seconds) and the last result."""
    best, out = float('inf'), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--events', type=int, default=1_000_000)
    parser.add_argument('--frames', type=int, default=16)
    parser.add_argument('--size', type=int, default=32)
    parser.add_argument('--repeat', type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    n = args.events
    rng = np.random.default_rng(0)
    t = np.sort(rng.integers(0, 6_000_000, n))
    ev = make_events(t, rng.integers(0, 128, n), rng.integers(0, 128, n),
                     rng.integers(0, 2, n))
    small = make_events(t % (1 << 23), ev['x'] % 34, ev['y'] % 34, ev['p'])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = {
            'aedat3.1': (write_aedat31, 'a.aedat', ev),
            'aedat2.0': (write_aedat2_dvs128, 'b.aedat', ev),
            'nmnist .bin': (write_nmnist_bin, 'c.bin', small),
            'npy': (lambda p, e: np.save(p, e), 'd.npy', ev),
        }
        for name, (write, fname, data) in files.items():
            path = os.path.join(tmp, fname)
            write(path, data)
            sec, _ = best_of(lambda: read_events(path), args.repeat)
            rows.append((f'read {name}', sec))
        reps = {
            f'frames T={args.frames} by number, {args.size}x{args.size}':
            lambda: events_to_frames(ev, (128, 128), args.frames, 'number',
                                     size=args.size),
            f'frames T={args.frames} by time, 128x128':
            lambda: events_to_frames(ev, (128, 128), args.frames, 'time'),
            f'voxel grid T={args.frames}, {args.size}x{args.size}':
            lambda: events_to_voxel_grid(ev, (128, 128), args.frames,
                                         size=args.size),
            f'time surface T={args.frames}, {args.size}x{args.size}':
            lambda: events_to_time_surface(ev, (128, 128), args.frames,
                                           50_000, size=args.size),
        }
        for name, fn in reps.items():
            sec, _ = best_of(fn, args.repeat)
            rows.append((name, sec))
        path = os.path.join(tmp, 'a.aedat')
        sec, _ = best_of(lambda: events_to_frames(
            read_events(path), (128, 128), args.frames, 'number',
            size=args.size), args.repeat)
        rows.append(('read aedat3.1 + frames (end to end)', sec))
    print(f'{n} events, best of {args.repeat}, one thread')
    for name, sec in rows:
        print(f'{name:45s} {sec * 1e3:8.1f} ms  {n / sec / 1e6:7.1f} M ev/s')


if __name__ == '__main__':
    main()
