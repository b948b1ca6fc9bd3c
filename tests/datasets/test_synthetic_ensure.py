"""Synthetic data is generated once, and again only when its options change."""
import json

import pytest

from bidl_train.datasets.synthetic.ensure import ensure_generated
from bidl_train.errors import DataError


def _writer(root, calls, text):

    def generate():
        calls.append(text)
        (root / 'data.txt').write_text(text)
        (root / 'cache').mkdir(exist_ok=True)

    return generate


def test_same_options_reuse_changed_options_regenerate(tmp_path):
    calls = []
    ensure_generated(str(tmp_path), 'Demo', dict(n=1), ['data.txt'],
                     _writer(tmp_path, calls, 'one'), derived=['cache'])
    ensure_generated(str(tmp_path), 'Demo', dict(n=1), ['data.txt'],
                     _writer(tmp_path, calls, 'again'), derived=['cache'])
    assert calls == ['one']
    (tmp_path / 'cache' / 'stale').write_text('x')
    ensure_generated(str(tmp_path), 'Demo', dict(n=2), ['data.txt'],
                     _writer(tmp_path, calls, 'two'), derived=['cache'])
    assert calls == ['one', 'two']
    assert (tmp_path / 'data.txt').read_text() == 'two'
    assert not (tmp_path / 'cache' / 'stale').exists()  # derived data reset
    record = json.loads((tmp_path / '.synthetic-Demo.json').read_text())
    assert record == dict(options=dict(n=2), state='complete')


def test_interrupted_generation_is_redone(tmp_path):
    calls = []

    def crash():
        (tmp_path / 'data.txt').write_text('half')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ensure_generated(str(tmp_path), 'Demo', dict(n=1), ['data.txt'],
                         crash)
    ensure_generated(str(tmp_path), 'Demo', dict(n=1), ['data.txt'],
                     _writer(tmp_path, calls, 'full'))
    assert calls == ['full']
    assert (tmp_path / 'data.txt').read_text() == 'full'


def test_foreign_data_is_never_overwritten(tmp_path):
    (tmp_path / 'data.txt').write_text('a user file')
    with pytest.raises(DataError, match='data.txt'):
        ensure_generated(str(tmp_path), 'Demo', dict(n=1), ['data.txt'],
                         _writer(tmp_path, [], 'generated'))
    assert (tmp_path / 'data.txt').read_text() == 'a user file'
