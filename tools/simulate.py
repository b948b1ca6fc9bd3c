"""Simulate a neural-dynamics config and write spikes, traces and plots.

    python tools/simulate.py configs/neurosim/izhikevich_regimes.yaml \
        [--out DIR] [--device cuda] [--cfg-options duration=500]

Writes into DIR (default ``work_dirs/neurosim/<config stem>``):

* ``spikes.npz``: per recorded population ``<pop>_trial``, ``<pop>_time``
  (ms), ``<pop>_neuron`` (one entry per spike) and ``<pop>_size``; plus
  ``dt`` and ``duration``;
* ``traces.npz``: ``time`` (ms) and ``<pop>_<var>`` ``[steps, trials,
  recorded neurons]``, ``<pop>_neurons`` (their indices);
* ``weights.npz``: the final weight matrix of every projection (changed by
  STDP where configured), keyed ``<pre>-><post>`` or the projection's name;
* ``summary.json``: per population spikes, mean rate, mean ISI CV, mean
  pairwise correlation (trial 0);
* ``raster.png``, ``rate.png``, ``isi_cv.png``, ``correlation.png``,
  ``traces.png``.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time
from contextlib import nullcontext

import numpy as np


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Run a bidl_train.neurosim network config.')
    parser.add_argument('config', help='Python or YAML network config')
    parser.add_argument('--out', help='output folder (default '
                        'work_dirs/neurosim/<config stem>)')
    parser.add_argument('--device', help='override the config device '
                        '(cpu, cuda)')
    parser.add_argument('--trial', type=int, default=0,
                        help='trial analysed in summary and plots')
    parser.add_argument('--no-plots', action='store_true')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        metavar='KEY=VALUE', help='override config keys')
    return parser.parse_args(argv)


def save_result(result, out_dir):
    """Write spikes.npz, traces.npz and weights.npz; return their paths."""
    spikes = dict(dt=result.dt, duration=result.duration)
    for pop, (trial, step, neuron) in result.spikes.items():
        spikes[f'{pop}_trial'] = trial
        spikes[f'{pop}_time'] = step * result.dt
        spikes[f'{pop}_neuron'] = neuron
        spikes[f'{pop}_size'] = result.sizes[pop]
    steps = int(round(result.duration / result.dt))
    traces = dict(time=np.arange(steps) * result.dt)
    for pop, variables in result.traces.items():
        traces[f'{pop}_neurons'] = np.asarray(result.trace_neurons[pop])
        for var, data in variables.items():
            traces[f'{pop}_{var}'] = data
    paths = []
    for name, arrays in (('spikes', spikes), ('traces', traces),
                         ('weights', result.weights)):
        path = osp.join(out_dir, f'{name}.npz')
        np.savez_compressed(path, **arrays)
        paths.append(path)
    return paths


def main(argv=None):
    args = parse_args(argv)
    from mmengine.config import Config, DictAction

    from bidl_train.cli.common import install_safe_yaml
    from bidl_train.cli.config_safety import (data_bases_only,
                                              is_data_config,
                                              restrict_registry_imports)
    from bidl_train.errors import BidlError, ConfigError
    from bidl_train.neurosim import Network
    from bidl_train.neurosim.analysis import summarize
    from bidl_train.neurosim.plots import plot_all
    try:
        if not osp.isfile(args.config):
            raise ConfigError(f'config file {args.config} does not exist')
        install_safe_yaml()  # YAML configs are data, never code
        data = is_data_config(args.config)
        restrict_registry_imports(data)
        # a YAML config may not inherit a Python file nor import modules
        with data_bases_only(args.config) if data else nullcontext():
            cfg = Config.fromfile(args.config,
                                  import_custom_modules=not data)
        if data and cfg.get('custom_imports'):
            raise ConfigError(f'config {args.config}: custom_imports is not '
                              'allowed in a YAML config (Python configs are '
                              'code: write one to import modules)')
        if args.cfg_options:
            overrides = {}
            for item in args.cfg_options:
                key, sep, value = item.partition('=')
                if not sep:
                    raise ConfigError(f'--cfg-options expects KEY=VALUE, got '
                                      f'{item!r}')
                overrides[key] = DictAction._parse_iterable(value)
            cfg.merge_from_dict(overrides)
        if args.device:
            cfg.device = args.device
        stem = osp.splitext(osp.basename(args.config))[0]
        out = args.out or osp.join('work_dirs', 'neurosim', stem)
        os.makedirs(out, exist_ok=True)
        net = Network.from_config(cfg.to_dict())
        start = time.perf_counter()
        result = net.run()
        wall = time.perf_counter() - start
        files = save_result(result, out)
        summary = dict(config=args.config, device=str(net.device),
                       dt_ms=result.dt, duration_ms=result.duration,
                       trials=result.batch, wall_seconds=round(wall, 3),
                       populations=summarize(result, args.trial))
        with open(osp.join(out, 'summary.json'), 'w') as f:
            json.dump(summary, f, indent=2)
        files.append(osp.join(out, 'summary.json'))
        if not args.no_plots:
            files += plot_all(result, out, trial=args.trial)
    except BidlError as e:
        print(f'simulate: error: {e}', file=sys.stderr)
        return 2
    print(f'simulated {result.duration:g} ms in {wall:.2f} s on '
          f'{net.device}')
    for pop, stats in summary['populations'].items():
        print(f'  {pop} (trial {args.trial}): {stats["spikes"]} spikes, '
              f'{stats["mean_rate_hz"]:.2f} Hz, CV {stats["mean_isi_cv"]}, '
              f'r {stats["mean_pairwise_r"]}')
        if result.batch > 1:
            print(f'    spikes per trial: {stats["spikes_per_trial"]}')
    print('wrote ' + ', '.join(files))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
