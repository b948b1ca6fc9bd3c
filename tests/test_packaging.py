"""The package declares what it imports and ships the files it names.

The expectation is independent of the code under test: the import
statements of ``bidl_train/`` (read with ``ast``) against the requirement
names in ``setup.cfg``, and ``package_data`` patterns against the files on
disk.
"""
import ast
import configparser
import glob
import importlib.metadata as md
import os.path as osp
import re
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PACKAGE = osp.join(ROOT, 'bidl_train')


def _setup_cfg():
    cfg = configparser.ConfigParser()
    cfg.read(osp.join(ROOT, 'setup.cfg'))
    return cfg


def _requirement_names(text):
    names = set()
    for line in text.splitlines():
        line = line.split('#', 1)[0].strip()
        if line:
            name = re.split(r'[<>=!~;\[ ]', line, 1)[0]
            names.add(_normalise(name))
    return names


def _normalise(name):
    return re.sub(r'[-_.]+', '-', name).lower()


def _declared():
    cfg = _setup_cfg()
    names = _requirement_names(cfg['options']['install_requires'])
    for extra in cfg['options.extras_require'].values():
        names |= _requirement_names(extra)
    return names


def _imported_top_modules():
    found = {}
    for path in glob.glob(osp.join(PACKAGE, '**', '*.py'), recursive=True):
        with open(path, encoding='utf-8') as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif (isinstance(node, ast.ImportFrom) and node.level == 0
                  and node.module):
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split('.')[0]
                if top not in sys.stdlib_module_names and top != 'bidl_train':
                    found.setdefault(top, osp.relpath(path, ROOT))
    return found


def test_every_imported_third_party_module_is_declared():
    distributions = md.packages_distributions()
    declared = _declared()
    missing = []
    for module, where in sorted(_imported_top_modules().items()):
        # a module that is not installed here is named like its project
        candidates = distributions.get(module, [module])
        if not any(_normalise(d) in declared for d in candidates):
            missing.append(f'{module} ({where}; distributions {candidates})')
    assert not missing, ('imported but not declared in setup.cfg: '
                         + ', '.join(missing))


def test_requirement_parser_reads_pins_and_comments():
    assert _requirement_names('torch>=2.1\n# note\nmmengine>=0.10.7,<0.11\n'
                              'PyYAML  # yaml\nopencv_python\n') == {
                                  'torch', 'mmengine', 'pyyaml',
                                  'opencv-python'}


@pytest.mark.parametrize('package, patterns', [
    (pkg, [p.strip() for p in value.split(',') if p.strip()])
    for pkg, value in _setup_cfg()['options.package_data'].items()])
def test_every_package_data_pattern_matches_files(package, patterns):
    base = osp.join(ROOT, *package.split('.'))
    for pattern in patterns:
        matches = [p for p in glob.glob(osp.join(base, pattern),
                                        recursive=True) if osp.isfile(p)]
        assert matches, f'package_data {package}: {pattern!r} matches nothing'


#: packages of the optional extras (setup.cfg) and of the comparison tests:
#: the README installs only `.[test]`, so a test module may import them
#: only through pytest.importorskip (or inside a test that skips first)
OPTIONAL = {'onnx', 'onnxruntime', 'onnxscript', 'nir', 'nirtorch', 'h5py',
            'aedat', 'nibabel', 'spikingjelly', 'snntorch', 'norse',
            'triton', 'tonic', 'expelliarmus', 'sklearn', 'mlxtend',
            'scattertext'}


def test_test_modules_import_optional_packages_only_guarded():
    offenders = []
    for path in sorted(glob.glob(osp.join(ROOT, 'tests', '**', '*.py'),
                                 recursive=True)):
        with open(path, encoding='utf-8') as f:
            tree = ast.parse(f.read(), path)
        for node in tree.body:  # module level: runs at collection
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                if name.split('.')[0] in OPTIONAL:
                    offenders.append(f'{osp.relpath(path, ROOT)}:'
                                     f'{node.lineno} imports {name}')
    assert not offenders, ('use pytest.importorskip for optional packages: '
                           + '; '.join(offenders))
