"""Imports inside bidl_train point down the layer list, never up.

DESIGN.md's dependency direction: data code never imports model code,
neuron maths never imports anything above it, nothing below ``cli`` parses
arguments. The ranks below are that list; a subpackage may import its own
modules and those of strictly lower rank. Read from the source with ``ast``
(relative imports resolved), so no import side effect can hide an edge.
"""
import ast
import glob
import os.path as osp

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

RANK = {
    'errors': 0, 'registry': 0,
    'utils': 1,
    'neurons': 2, 'datasets': 2,
    'layers': 3,
    'learning': 4,
    'models': 5, 'neurosim': 5,
    'visualization': 6,
    'evaluation': 7, 'deploy': 7,
    'engine': 8,
    'cli': 9,
}


def _subpackage(module):
    parts = module.split('.')
    return parts[1] if len(parts) > 1 and parts[0] == 'bidl_train' else None


def _imports(path):
    module = osp.relpath(path, ROOT)[:-3].replace(osp.sep, '.')
    # a module's own package; for an __init__ that is the package itself
    package = module.rsplit('.', 1)[0]
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - node.level + 1]
                name = '.'.join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            yield name, node.lineno


def test_every_subpackage_has_a_rank():
    found = {osp.basename(p)[:-3] if p.endswith('.py') else osp.basename(p)
             for p in glob.glob(osp.join(ROOT, 'bidl_train', '*'))
             if (p.endswith('.py')
                 or osp.isfile(osp.join(p, '__init__.py')))
             and not osp.basename(p).startswith('__')}
    assert found <= set(RANK), f'give these a rank: {found - set(RANK)}'


def test_imports_point_down():
    upward = []
    for path in glob.glob(osp.join(ROOT, 'bidl_train', '**', '*.py'),
                          recursive=True):
        own = _subpackage(
            osp.relpath(path, ROOT)[:-3].replace(osp.sep, '.'))
        for name, line in _imports(path):
            target = _subpackage(name or '')
            if target is None or own is None or target == own:
                continue
            if RANK[target] >= RANK[own]:
                upward.append(f'{osp.relpath(path, ROOT)}:{line} imports '
                              f'{name} ({own} may not import {target})')
    assert not upward, '\n'.join(upward)


def test_relative_imports_are_resolved():
    # datasets/transforms/representation.py imports ..event_binning: a
    # module of datasets itself, not of a package above it
    path = osp.join(ROOT, 'bidl_train', 'datasets', 'transforms',
                    'representation.py')
    names = [name for name, _ in _imports(path)]
    assert 'bidl_train.datasets.event_binning' in names
