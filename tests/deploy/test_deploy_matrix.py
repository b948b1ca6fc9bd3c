"""The deploy matrix: every config x every target deploys or is refused.

Runs the logic of ``tools/deploy_matrix.py`` in-process: each config's
model, made small (``shrink``: at most ``MAX_T`` steps, the smallest input
its backbone takes, narrower wide backbones), trained a few iterations on
random inputs, checkpointed (once per config, shared by its three targets)
and deployed at batch 2 over all steps. Every cell must be ``verified`` or
refused with a one-line reason that names the blocking layer: no crash, no
traceback, no MISMATCH.

ONNX: every config's graphs are exported and verified in ONNX Runtime. The
recommended (``torch.export``-based) exporter takes seconds to a minute per
export, the TorchScript-based one under a second, so the default run
exports with the latter (``BIDL_TRAIN_ONNX_EXPORTER=torchscript``) except
for the configs of ``DYNAMO_CELLS``, one per lowering family that the
recommended exporter writes (asserted: no fallback). TorchScript and NIR:
every cell's deployability is checked (lowering and the target's refusals,
everything before the export), and the cells of ``VERIFIED_CELLS`` are
exported and verified. ``BIDL_DEPLOY_MATRIX_FULL=1`` exports and verifies
every cell, ONNX with the recommended exporter (the table in
docs/deploy_matrix.md comes from ``tools/deploy_matrix.py``, which does).
"""
import functools
import importlib.util
import os
import os.path as osp
import re

import pytest

from helpers.paths import REPO as ROOT
SPEC = importlib.util.spec_from_file_location(
    'deploy_matrix', osp.join(ROOT, 'tools', 'deploy_matrix.py'))
matrix = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(matrix)

pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')
pytest.importorskip('nir')

CONFIGS = matrix.config_paths()
#: (config, targets) exported and verified in the default run
VERIFIED_CELLS = {
    'configs/dvs_gesture.py': ('torchscript', 'nir'),
    'configs/jester.py': ('torchscript', ),
    'configs/imdb.py': ('torchscript', ),
    'configs/shd.py': ('nir', ),
    'configs/zoo/dvs_gesture_sew_resnet18_add.py': ('torchscript', ),
    'configs/zoo/dvs_gesture_spikformer.py': ('torchscript', ),
    'configs/zoo/dvs_gesture_lifplus.py': ('torchscript', ),
    'configs/demo/colearning_shift.py': ('torchscript', ),
}
#: ONNX cells exported with the recommended (dynamo) exporter in the
#: default run: one config per lowering family it writes without a
#: fallback (sequential conv stack with membrane BatchNorm and a group-mean
#: head's reduction, 3D convs, 1D spike input, ResNetLif, token ids); the
#: others, and the family it falls back on (plastic layers: the teacher
#: ContextVar), with the TorchScript one
DYNAMO_CELLS = ('configs/dvs_gesture.py',
                'configs/demo/synthetic_medmnist3d.py', 'configs/shd.py',
                'configs/zoo/cifar10_dvs_resnetlif10.py',
                'configs/demo/synthetic_imdb.py')
FULL = os.environ.get('BIDL_DEPLOY_MATRIX_FULL') == '1'


def _rel(path):
    return osp.relpath(path, ROOT).replace(osp.sep, '/')


def _verified_here(path, target):
    if FULL or target == 'onnx':
        return True
    return target in VERIFIED_CELLS.get(_rel(path), ())


def _dynamo_here(path):
    return FULL or _rel(path) in DYNAMO_CELLS


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
    """``prepare`` once per config (shared by its three targets)."""
    base = tmp_path_factory.mktemp('matrix')

    @functools.lru_cache(maxsize=None)
    def get(path):
        folder = base / osp.splitext(matrix.config_name(path))[0].replace(
            '/', '_')
        folder.mkdir()
        return matrix.prepare(path, str(folder))
    return get


def _assert_refusal_names_a_layer(cell, prepared):
    """A refusal is one line naming a layer of the model (its dotted path
    or a path inside it)."""
    from bidl_train.registry import MODELS
    detail = cell['detail']
    assert '\n' not in detail and 'Traceback' not in detail
    found = re.search(r'layer ([\w.]+)', detail)
    assert found, f'the refusal names no layer: {detail}'
    path = found.group(1).rstrip('.')
    modules = dict(MODELS.build(prepared['cfg'].model).named_modules())
    parts = path.split('.')
    # a lowered node may be named below its module (``<layer>.pool``)
    assert any('.'.join(parts[:n]) in modules
               for n in range(len(parts), 0, -1)), (path, detail)


def _check_only(prepared, target):
    """Everything ``deploy`` does before writing a file: lower the model
    and let the target refuse what it cannot express."""
    from bidl_train.deploy.api import get_target
    from bidl_train.deploy.lower import lower_model
    from bidl_train.errors import BidlError
    from bidl_train.registry import MODELS
    model = MODELS.build(prepared['cfg'].model).eval()
    try:
        get_target(target).check(lower_model(model, prepared['x'][0, :1]))
    except BidlError as err:
        return dict(status='refused', detail=str(err).splitlines()[0])
    return dict(status='deployable', detail='')


def test_verified_cells_name_existing_configs():
    paths = {_rel(p) for p in CONFIGS}
    assert set(VERIFIED_CELLS) <= paths
    assert set(DYNAMO_CELLS) <= paths
    assert all(set(t) <= set(matrix.TARGETS)
               for t in VERIFIED_CELLS.values())


@pytest.mark.parametrize('target', matrix.TARGETS)
@pytest.mark.parametrize('path', CONFIGS, ids=[matrix.config_name(p)
                                               for p in CONFIGS])
def test_every_cell_deploys_or_is_refused_with_its_layer(
        path, target, prepared, tmp_path, monkeypatch):
    # ONNX: the exporter users get by default for DYNAMO_CELLS (and every
    # cell under BIDL_DEPLOY_MATRIX_FULL), the fast one elsewhere
    if _dynamo_here(path):
        monkeypatch.delenv('BIDL_TRAIN_ONNX_EXPORTER', raising=False)
    else:
        monkeypatch.setenv('BIDL_TRAIN_ONNX_EXPORTER', 'torchscript')
    ready = prepared(path)
    assert ready['x'].shape[1] >= 2  # batch >= 2, all (shrunk) steps
    if not _verified_here(path, target):
        cell = _check_only(ready, target)
        if cell['status'] == 'refused':
            _assert_refusal_names_a_layer(cell, ready)
        return
    cell = matrix.deploy_cell(ready, target, str(tmp_path / target), path,
                              fixes=False)
    assert cell['status'] in ('verified', 'refused'), cell['detail']
    if cell['status'] == 'refused':
        _assert_refusal_names_a_layer(cell, ready)
    else:
        ver = cell['report']['verification']
        assert ver['samples'] >= 2
        assert ver['steps'] == ready['shape'][0]
        assert ver['spike_mismatches'] == {}
        if target == 'onnx' and not FULL:
            exporter = cell['report']['exporter']
            assert exporter['used'] == (
                'dynamo' if _dynamo_here(path) else 'torchscript'), \
                exporter.get('fallback_reason')


def test_shrink_says_what_it_changed():
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'zoo',
                                   'cifar10_dvs_resnetlif50.py'))
    shape, changes = matrix.shrink(cfg)
    assert shape == (matrix.MAX_T, 2, 16, 16)
    assert changes == ['T 10->3', 'width 64->8', '128x128->16x16']
    # the head follows the narrower backbone: 8 * 8 * 4 (bottleneck)
    assert cfg.model.head.in_features == 256


def test_the_table_has_one_row_per_cell():
    rows = [dict(config='a.py', target='onnx', status='verified',
                 detail='max logit diff 1e-07', remedy='-', shrunk='-'),
            dict(config='b.py', target='nir', status='refused',
                 detail="target 'nir' cannot express layer x: y | z",
                 remedy="use stem='cifar'", shrunk='T 8->3')]
    lines = matrix.markdown(rows).splitlines()
    assert lines[0].startswith('| config | target | result |')
    assert lines[2] == ('| a.py | onnx | verified | max logit diff 1e-07 | '
                        '- | - |')
    assert lines[3] == ("| b.py | nir | refused | target 'nir' cannot "
                        "express layer x: y \\| z | use stem='cifar' | "
                        'T 8->3 |')
