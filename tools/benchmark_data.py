"""Throughput of the event readers and representations (events per second).

Writes one stream of ``--events`` random events (128x128 unless the format
limits it) in each supported format to a temporary folder, then times
``read_events`` and each representation on one core; then the SHD ``.h5``
reader with spike binning, the event/frame augmentations (time jitter,
resize, rotation) and the DVS emulator (frames per second and events per
second it produces). Example::

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
from bidl_train.datasets.emulator import emulate_events
from bidl_train.datasets.io import read_spike_h5
from bidl_train.datasets.event_binning import (events_to_frames,
                                                 events_to_spike_bins,
                                                 events_to_time_surface,
                                                 events_to_voxel_grid)
from bidl_train.registry import TRANSFORMS


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
        rows += augmentation_rows(ev, args)
        shd_rows = shd_benchmark(tmp, args)
    print(f'{n} events, best of {args.repeat}, one thread')
    for name, sec in rows:
        print(f'{name:45s} {sec * 1e3:8.1f} ms  {n / sec / 1e6:7.1f} M ev/s')
    for line in shd_rows + emulator_benchmark(args):
        print(line)


def augmentation_rows(ev, args):
    """Time jitter on the events; resize and rotation on T frames."""
    rows = []
    jitter = TRANSFORMS.build(dict(type='EventTimeJitter', std=100, seed=0))
    sec, _ = best_of(lambda: jitter(dict(events=ev, sensor_size=(128, 128))),
                     args.repeat)
    rows.append(('time jitter (std 100 us, re-sort)', sec))
    frames = events_to_frames(ev, (128, 128), args.frames, 'number')
    for name, cfg in (
            (f'resize T={args.frames} 128 -> {args.size} (area)',
             dict(type='ResizeFrames', size=args.size)),
            (f'rotate T={args.frames} 128x128 (nearest)',
             dict(type='RandomRotateFrames', degrees=15, seed=0))):
        tf = TRANSFORMS.build(cfg)
        sec, _ = best_of(lambda: tf(dict(inputs=frames)), args.repeat)
        rows.append((name + ' [per stream]', sec))
    return rows


def shd_benchmark(tmp, args, samples=256, spikes=8000):
    """Write an SHD-layout file (``samples`` x ``spikes``), time reading it
    and binning every sample into [100, 700]."""
    import h5py
    rng = np.random.default_rng(1)
    path = os.path.join(tmp, 'shd_bench.h5')
    with h5py.File(path, 'w') as f:
        times = f.create_dataset('spikes/times', (samples, ),
                                 dtype=h5py.vlen_dtype(np.float64))
        units = f.create_dataset('spikes/units', (samples, ),
                                 dtype=h5py.vlen_dtype(np.uint16))
        for i in range(samples):
            times[i] = np.sort(rng.uniform(0, 1.0, spikes))
            units[i] = rng.integers(0, 700, spikes).astype(np.uint16)
        f['labels'] = rng.integers(0, 20, samples).astype(np.uint16)
    total = samples * spikes
    sec_read, (evs, _) = best_of(lambda: read_spike_h5(path), args.repeat)
    sec_bin, _ = best_of(lambda: [events_to_spike_bins(e, 700, 100,
                                                       1_000_000)
                                  for e in evs], args.repeat)
    return [f'SHD .h5: {samples} samples x {spikes} spikes',
            f'{"read_spike_h5":45s} {sec_read * 1e3:8.1f} ms  '
            f'{total / sec_read / 1e6:7.1f} M spikes/s',
            f'{"SpikeBins T=100 [100, 700]":45s} {sec_bin * 1e3:8.1f} ms  '
            f'{total / sec_bin / 1e6:7.1f} M spikes/s']


def emulator_benchmark(args, frames=60, size=128):
    """DVS emulator on a moving-bar clip (``frames`` of ``size``^2)."""
    xs = np.arange(size)
    clip = np.stack([(np.abs(xs[None, :] - (10 + 2 * k)) < 6)
                     * np.ones((size, 1)) * 0.8 + 0.1
                     for k in range(frames)])
    times = np.arange(frames) * 1e6 / 30
    sec, ev = best_of(lambda: emulate_events(clip, times), args.repeat)
    return [f'DVS emulator: {frames} frames of {size}x{size}',
            f'{"emulate_events":45s} {sec * 1e3:8.1f} ms  '
            f'{frames / sec:7.0f} frames/s, {len(ev) / sec / 1e6:.2f} M ev/s '
            f'({len(ev)} events)']


if __name__ == '__main__':
    main()
