"""Deploy every config to every target and print the outcome as a table.

For each config in ``configs/*.py``, ``configs/zoo/*.py`` and
``configs/demo/*.py`` and each target (torchscript, onnx, nir): build the
config's model, train it a few iterations on random inputs of the config's
input shape (so the weights and BatchNorm statistics move away from their
initial values), save a checkpoint, load it into a freshly built model and
deploy it with :func:`bidl_train.deploy.api.deploy` at batch 2 over all time
steps. A cell is ``verified`` (with the largest logit difference),
``MISMATCH`` (with the failed checks) or ``refused`` with the first line of
the error and the config change that makes the model deployable.

To keep the whole matrix fast, each model is made smaller where its
architecture allows it, and the table says how (column "shrunk"): fewer
time steps (at most ``MAX_T``), a smaller input (the smallest of ``SIZES``
the backbone accepts) and, for the wide backbones of ``NARROW``, fewer
channels. Depth, block kinds, neuron kinds and every option that decides
deployability are the config's own.

Usage::

    python tools/deploy_matrix.py [--targets onnx nir] [--configs PATTERN]
                                  [--work-dir DIR] [--check-only]

``--check-only`` skips training and export: each model is lowered and
each target refuses it or not (``deployable``), with the config change of
each refusal.
"""
import argparse
import glob
import inspect
import json
import os
import os.path as osp
import sys
import tempfile
import time
import traceback

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG_DIRS = ('configs', 'configs/zoo', 'configs/demo')
TARGETS = ('torchscript', 'onnx', 'nir')
BATCH = 2
MAX_T = 3
#: input sizes tried, smallest first, for a backbone that takes one
SIZES = (16, 32, 48, 64, 128)
#: narrower versions of the wide backbones (same depth and blocks)
NARROW = {'ResNetLif': dict(width=8), 'SEWResNet': dict(width=8),
          'Spikformer': dict(dim=32), 'PLIFNet': dict(channels=16, fc=32)}
TRAIN_ITERS = 2


def config_paths(pattern=None):
    """Every config of :data:`CONFIG_DIRS` (``_base_`` excluded), sorted;
    ``pattern``: only the paths that contain it."""
    paths = []
    for folder in CONFIG_DIRS:
        paths += sorted(glob.glob(osp.join(ROOT, folder, '*.py')))
    return [p for p in paths if pattern is None or pattern in p]


def config_name(path):
    return osp.relpath(path, osp.join(ROOT, 'configs'))


def _time_steps(cfg):
    """T as the config states it (one ``num_steps``; a disagreement between
    the places that state it is refused in one line)."""
    from bidl_train.utils.time_steps import config_num_steps
    return config_num_steps(cfg)


def _input_shape(cfg):
    """``(T, C, H, W)`` of one sample as the model sees it; ``(T, )`` for a
    text backbone (token ids)."""
    backbone = cfg.model.backbone
    steps = _time_steps(cfg)
    if 'vocab_size' in backbone:  # a text backbone takes token ids
        return (steps, )
    hint = cfg.get('_input_shape')
    if hint is not None:
        return tuple(hint)
    size = backbone.input_size
    height, width = (size, size) if isinstance(size, int) else size
    return (steps, backbone.in_channels, height, width)


def random_inputs(cfg, shape, seed=0):
    """``[T, BATCH, ...]`` random inputs of ``shape``: binary frames (as
    events and spike encoders give), or token ids for text."""
    gen = torch.Generator().manual_seed(seed)
    if len(shape) == 1:
        vocab = cfg.model.backbone.vocab_size
        return torch.randint(1, vocab, (shape[0], BATCH), generator=gen)
    return (torch.rand((shape[0], BATCH) + tuple(shape[1:]),
                       generator=gen) > 0.7).float()


def _accepts(cls, key):
    return key in inspect.signature(cls.__init__).parameters


def _fits(cfg, shape):
    """Whether the backbone of ``cfg`` runs on an input of ``shape``, and
    its feature size there (None: it does not)."""
    from bidl_train.registry import MODELS
    try:
        backbone = MODELS.build(cfg.model.backbone).eval()
        with torch.no_grad():
            out = backbone(random_inputs(cfg, (1, ) + tuple(shape[1:])))
        return int(out.shape[-1])
    except Exception:  # a size the architecture cannot take: try the next
        return None


def shrink(cfg):
    """Make ``cfg``'s model small and fast (in place). Returns the input
    shape and the list of changes made, as text."""
    from bidl_train.registry import MODELS
    shape = _input_shape(cfg)
    changes = []
    if shape[0] > MAX_T:
        changes.append(f'T {shape[0]}->{MAX_T}')
        shape = (MAX_T, ) + shape[1:]
    if len(shape) == 1:
        return shape, changes
    backbone = cfg.model.backbone
    cls = MODELS.get(backbone.type)
    for key, value in NARROW.get(backbone.type, {}).items():
        params = inspect.signature(cls.__init__).parameters
        current = backbone.get(key, params[key].default) \
            if key in params else value
        if current != value:
            changes.append(f'{key} {current}->{value}')
            backbone[key] = value
    sized = _accepts(cls, 'input_size')
    for size in SIZES:
        height, width = shape[2:]
        if size >= max(height, width):
            break
        new = shape[:2] + ((height, size) if height == 1 else (size, size))
        if sized:
            backbone.input_size = new[2:] if height == 1 else size
        if _fits(cfg, new):
            changes.append(f'{height}x{width}->{new[2]}x{new[3]}')
            shape = new
            break
        if sized:
            backbone.input_size = (height, width) if height == 1 else height
    features = _fits(cfg, shape)
    head = cfg.model.head
    if features and head.get('in_features') not in (None, features):
        head.in_features = features  # follows the narrower backbone
    return shape, changes


def train_briefly(model, x, num_classes, iters=TRAIN_ITERS):
    """A few Adam steps on ``x`` with labels ``0, 1, ...``: the weights
    and the BatchNorm running statistics move away from their
    initialisation, as after real training."""
    labels = torch.arange(x.shape[1]) % num_classes
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.Adam(params, lr=1e-3) if params else None
    model.train()
    for _ in range(iters):
        loss = model(x, dict(label=labels), mode='loss')['loss']
        if optim is not None:
            optim.zero_grad()
            loss.backward()
            optim.step()
    return model.eval(), labels.tolist()


def remedy(err, cfg=None, target=None):
    """The config change that makes a refused model deployable: the fixes
    ``bidl-deploy --check`` finds and verifies (where that is available),
    else the hint after the refusal's feature, or '-'."""
    first = str(err).splitlines()[0]
    feature = getattr(err, 'feature', None)
    hint = '-'
    if feature and feature in first:
        rest = first[first.index(feature) + len(feature):]
        hint = rest[2:] if rest.startswith('; ') else '-'
    if cfg is None:
        return hint
    try:
        from bidl_train.deploy.check import check_config
        result = check_config(cfg, target)
    except Exception:  # --check not available, or it failed: the hint
        return hint
    # each fix once, with how many blocked layers it frees; blockers no
    # config key removes by their feature
    groups = {}
    for b in result.blockers + result.later:
        key = str(b.fix) if b.fix else \
            f"no config key removes {b.feature.split(' (')[0]}"
        groups[key] = groups.get(key, 0) + 1
    text = '; '.join(f"{key} ({count} layer{'s' if count > 1 else ''})"
                     for key, count in groups.items())
    if result.fixed_deploys:
        text += '; then it deploys'
    return text or hint


def prepare(path, work_dir, seed=0):
    """Build, shrink, train and checkpoint the model of config ``path``:
    ``dict(cfg, shape, changes, x, labels, checkpoint)``."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from bidl_train.registry import MODELS
    init_default_scope('bidl_train')
    cfg = Config.fromfile(path)
    shape, changes = shrink(cfg)
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    x = random_inputs(cfg, shape, seed)
    model, labels = train_briefly(model, x, cfg.model.head.num_classes)
    checkpoint = osp.join(work_dir, 'model.pth')
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(config=config_name(path), changes=changes)),
               checkpoint)
    return dict(cfg=cfg, shape=shape, changes=changes, x=x, labels=labels,
                checkpoint=checkpoint)


def deploy_cell(prepared, target, out_dir, config_path=None, fixes=True):
    """Deploy the checkpoint of ``prepared`` to ``target``: ``dict(status,
    detail, remedy, layer, report)``; status ``verified``, ``MISMATCH``,
    ``refused`` (a :class:`~bidl_train.errors.BidlError`) or ``error``
    (anything else: a bug, with its traceback in ``detail``). ``fixes``:
    find the config change of a refusal with ``bidl-deploy --check``'s
    logic (slower), else take the refusal's own hint."""
    from bidl_train.deploy.api import deploy
    from bidl_train.deploy.report import checkpoint_source
    from bidl_train.engine.checkpoint import load_model_weights
    from bidl_train.errors import BidlError
    from bidl_train.registry import MODELS
    model = MODELS.build(prepared['cfg'].model)
    load_model_weights(model, prepared['checkpoint'])
    model.eval()
    try:
        report = deploy(model, target, prepared['x'], out_dir,
                        labels=prepared['labels'], source=checkpoint_source(
                            prepared['checkpoint'], config_path))
    except BidlError as err:
        message = str(err)
        return dict(status='refused', detail=message.splitlines()[0],
                    remedy=remedy(
                        err, prepared['cfg'] if fixes else None, target),
                    layer=getattr(err, 'layer', None),
                    report=None)
    except Exception:
        return dict(status='error', detail=traceback.format_exc(),
                    remedy='-', layer=None, report=None)
    ver = report['verification']
    logits = max(ver['max_abs_diff'][k] for k in ver['max_abs_diff']
                 if 'logits' in k)
    ties = ver['ties_synchronised']['synchronised']
    if report['status'] == 'verified':
        detail = f'max logit diff {logits:.2g}'
        if ties:
            detail += f', {ties} threshold ties synchronised'
    else:
        detail = '; '.join(f"{f['check']}: {f['value']:.3g} (limit "
                           f"{f['limit']:.3g})" for f in ver['failed_checks'])
    if 'exporter' in report:
        detail += f", {exporter_text(report['exporter'])}"
    return dict(status=report['status'], detail=detail, remedy='-',
                layer=None, report=report)


def exporter_text(exporter):
    """Which torch exporter wrote an ONNX cell's graphs: ``dynamo``, or
    per graph after a fallback (with the reason's first words)."""
    if exporter['used'] != 'torchscript' and 'fallback_reason' not in \
            exporter:
        return exporter['used']
    used = ', '.join(f"{name}: {info['used']}"
                     for name, info in exporter['graphs'].items())
    return f"{used} ({exporter['fallback_reason'][:120]})"


def check_cell(path, target):
    """The refusals of ``target`` for the (shrunk, untrained) model of
    config ``path``, without exporting: ``dict(status, detail, remedy,
    layer, shrunk)``; status ``deployable`` (lowered and checked, not
    exported) or ``refused``."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from bidl_train.deploy.api import get_target
    from bidl_train.deploy.lower import lower_model
    from bidl_train.errors import BidlError
    from bidl_train.registry import MODELS
    init_default_scope('bidl_train')
    cfg = Config.fromfile(path)
    shape, changes = shrink(cfg)
    model = MODELS.build(cfg.model).eval()
    cell = dict(status='deployable', detail='lowered and checked, not '
                'exported (--check-only)', remedy='-', layer=None,
                shrunk=', '.join(changes) or '-')
    try:
        get_target(target).check(lower_model(
            model, random_inputs(cfg, (1, ) + tuple(shape[1:]))[0, :1]))
    except BidlError as err:
        cell.update(status='refused', detail=str(err).splitlines()[0],
                    remedy=remedy(err, cfg, target),
                    layer=getattr(err, 'layer', None))
    return cell


def run_matrix(paths, targets, work_dir, log=None, check_only=False):
    """Every cell of ``paths`` x ``targets``: a list of row dicts;
    ``log(row)`` is called as each one is done."""
    rows = []
    for path in paths:
        name = config_name(path)
        folder = osp.join(work_dir, osp.splitext(name)[0].replace('/', '_'))
        os.makedirs(folder, exist_ok=True)
        start = time.time()
        if check_only:
            for target in targets:
                rows.append(dict(config=name, target=target,
                                 **check_cell(path, target)))
                if log:
                    log(rows[-1])
            continue
        try:
            prepared = prepare(path, folder)
        except Exception:
            failed = [dict(config=name, target=t, status='error', shrunk='-',
                           detail=traceback.format_exc(), remedy='-')
                      for t in targets]
            rows += failed
            for row in failed if log else ():
                log(row)
            continue
        for target in targets:
            cell = deploy_cell(prepared, target, osp.join(folder, target),
                               path)
            rows.append(dict(config=name, target=target,
                             shrunk=', '.join(prepared['changes']) or '-',
                             seconds=round(time.time() - start, 1), **cell))
            start = time.time()
            if log:
                log(rows[-1])
    return rows


HEADER = ('| config | target | result | detail | to make it deployable '
          '| shrunk for the matrix |\n|---|---|---|---|---|---|')


def markdown_row(row):
    """One row of the table (an error shows its exception line only)."""
    detail = row['detail'].strip().splitlines()[-1] \
        if row['status'] == 'error' else row['detail']
    return '| ' + ' | '.join(str(v).replace('|', '\\|') for v in (
        row['config'], row['target'], row['status'], detail, row['remedy'],
        row['shrunk'])) + ' |'


def json_row(row):
    """``row`` without its full report, plus the ONNX exporter entry."""
    out = {k: v for k, v in row.items() if k != 'report'}
    if row.get('report') and 'exporter' in row['report']:
        out['exporter'] = row['report']['exporter']
    return out


def markdown(rows):
    """The matrix as a markdown table, one row per config and target."""
    return '\n'.join([HEADER] + [markdown_row(row) for row in rows])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--targets', nargs='+', default=list(TARGETS),
                        choices=TARGETS)
    parser.add_argument('--configs', default=None, metavar='PATTERN',
                        help='only the configs whose path contains PATTERN')
    parser.add_argument('--check-only', action='store_true',
                        help='no training and no export: lower each '
                        'model and let each target refuse it (fast)')
    parser.add_argument('--work-dir', default=None,
                        help='where checkpoints and artefacts go (default: '
                        'a temporary folder, removed afterwards)')
    parser.add_argument('--jsonl', default=None, metavar='FILE',
                        help='also append each cell to FILE as one JSON '
                        'line (with its seconds and exporter)')
    args = parser.parse_args(argv)
    sys.path.insert(0, ROOT)
    import logging

    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    paths = config_paths(args.configs)
    if not paths:
        parser.error(f'no config path contains {args.configs!r}')

    def log(row):  # one row as soon as it is done: the matrix is long
        print(markdown_row(row), flush=True)
        if args.jsonl:
            with open(args.jsonl, 'a') as file:
                file.write(json.dumps(json_row(row)) + '\n')
    print(HEADER, flush=True)
    if args.work_dir:
        rows = run_matrix(paths, args.targets, args.work_dir, log,
                          args.check_only)
    else:
        with tempfile.TemporaryDirectory() as work_dir:
            rows = run_matrix(paths, args.targets, work_dir, log,
                              args.check_only)
    failed = [r for r in rows if r['status'] in ('error', 'MISMATCH')]
    for row in failed:
        print(f"\n{row['config']} {row['target']}: {row['detail']}",
              file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    raise SystemExit(main())
