"""Every way a checkpoint enters goes through one allow-listed loader.

Local paths and http(s) URLs (downloaded to a temporary file, then read
with ``weights_only=True`` and the allow-list); every other scheme mmengine
knows is refused. URLs point at an ``http.server`` on 127.0.0.1 started here.
"""
import functools
import json
import os
import shutil
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from mmengine.runner.checkpoint import (CheckpointLoader, _load_checkpoint,
                                        load_checkpoint)
from helpers.payloads import RunsShell  # unpickling runs `touch marker`
from helpers.commands import run_here, tiny_config, tool

from bidl_train.engine import checkpoint as ckpt_mod
from bidl_train.engine.checkpoint import (install_safe_loader,
                                          load_checkpoint_file,
                                          load_from_bidl_safe, safe_load)
from bidl_train.errors import CheckpointError

NO_PROXY = dict(no_proxy='127.0.0.1', NO_PROXY='127.0.0.1')

# every non-http scheme mmengine 0.10.7 registers, plus two it does not
OTHER_SCHEMES = [
    ('s3://bucket/x.pth', 's3'),
    ('open-mmlab:s3://bucket/x.pth', 'open-mmlab:s3'),
    ('petrel://bucket/x.pth', 'petrel'),
    ('pavi://model/x', 'pavi'),
    ('torchvision://resnet18', 'torchvision'),
    ('modelzoo://resnet18', 'modelzoo'),
    ('open-mmlab://resnet50_v1c', 'open-mmlab'),
    ('openmmlab://resnet50_v1c', 'openmmlab'),
    ('mmcls://resnet18', 'mmcls'),
    ('ftp://127.0.0.1/x.pth', 'ftp'),
    ('file:///tmp/x.pth', 'file'),
]


class _RunsExec:
    """Unpickling this creates ``marker`` through builtins.exec."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f'open({str(self.marker)!r}, "w").close()', ))


class _Handler(SimpleHTTPRequestHandler):
    """Static files; ``/nolength/NAME`` omits Content-Length, ``/slow/``
    answers after two seconds."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.startswith('/slow/'):
            time.sleep(2)
            self.path = self.path[len('/slow'):]
        if self.path.startswith('/nolength/'):
            data = open(self.translate_path(self.path[len('/nolength'):]),
                        'rb').read()
            self.send_response(200)
            self.end_headers()  # HTTP/1.0: the body ends when we close
            self.wfile.write(data)
            return
        super().do_GET()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that stops reading (size cap, timeout) is expected


@pytest.fixture(scope='module')
def served(tmp_path_factory):
    """A trained checkpoint and malicious pickles behind a local server."""
    root = tmp_path_factory.mktemp('sources')
    cfg = tiny_config(root)
    work = root / 'work'
    run_here([tool('train'), cfg, '--work-dir', str(work), '--seed', '1'], root)
    www = root / 'www'
    www.mkdir()
    shutil.copy(work / 'epoch_1.pth', www / 'good.pth')
    marker = root / 'pwned'
    torch.save(dict(state_dict={}, x=RunsShell(marker)), www / 'evil.pth')
    torch.save(dict(state_dict={}, x=_RunsExec(marker)), www / 'exec.pth')
    server = _QuietServer(
        ('127.0.0.1', 0), functools.partial(_Handler, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f'http://127.0.0.1:{server.server_address[1]}'
    yield dict(root=root, cfg=cfg, work=work, www=www, marker=marker, url=url)
    server.shutdown()
    server.server_close()


@pytest.fixture
def tmp_downloads(tmp_path, monkeypatch):
    """Temporary files go to a folder the test can check is left empty."""
    folder = tmp_path / 'tmp'
    folder.mkdir()
    monkeypatch.setattr('tempfile.tempdir', str(folder))
    for key, value in NO_PROXY.items():
        monkeypatch.setenv(key, value)
    return folder


# ---------------------------------------------------------------------------
# mmengine's CheckpointLoader: every scheme is ours
# ---------------------------------------------------------------------------
def test_every_registered_scheme_is_ours_after_install(monkeypatch):
    # mmengine's own table: local, http(s), pavi, s3/petrel, torchvision...
    monkeypatch.setattr(CheckpointLoader, '_schemes',
                        dict(CheckpointLoader._schemes))
    monkeypatch.setattr(CheckpointLoader, '_get_checkpoint_loader',
                        CheckpointLoader._get_checkpoint_loader)
    install_safe_loader()
    assert {'', 'http://', 'https://', 'pavi://', 'torchvision://',
            'mmcls://'} <= set(CheckpointLoader._schemes)
    for prefix, loader in CheckpointLoader._schemes.items():
        assert loader is load_from_bidl_safe, prefix
    for source, _ in OTHER_SCHEMES + [('https://h/x.pth', 'https'),
                                      ('x.pth', '')]:
        assert CheckpointLoader._get_checkpoint_loader(source) is \
            load_from_bidl_safe, source


def test_scheme_registered_after_install_cannot_bypass(monkeypatch, tmp_path):
    monkeypatch.setattr(CheckpointLoader, '_schemes',
                        dict(CheckpointLoader._schemes))
    monkeypatch.setattr(CheckpointLoader, '_get_checkpoint_loader',
                        CheckpointLoader._get_checkpoint_loader)
    install_safe_loader()
    called = []
    CheckpointLoader.register_scheme(
        prefixes='plugin://', force=True)(lambda f, m: called.append(f))
    with pytest.raises(CheckpointError, match='plugin://'):
        CheckpointLoader.load_checkpoint('plugin://x.pth')
    assert called == []


@pytest.mark.parametrize('source,scheme', OTHER_SCHEMES)
def test_other_schemes_are_refused_before_any_connection(
        source, scheme, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError(f'{source} opened a connection')
    monkeypatch.setattr('socket.create_connection', no_network)
    monkeypatch.setattr('socket.socket.connect', no_network)
    install_safe_loader()
    with pytest.raises(CheckpointError) as err:
        _load_checkpoint(source, map_location='cpu')
    message = str(err.value)
    assert f'{scheme}://' in message and source in message
    assert 'pass its local path' in message
    assert '\n' not in message


# ---------------------------------------------------------------------------
# in process: valid and malicious checkpoints over http
# ---------------------------------------------------------------------------
def test_valid_checkpoint_over_http_loads_through_mmengine(
        served, tmp_downloads):
    install_safe_loader()
    expected = safe_load(served['www'] / 'good.pth')
    url = served['url'] + '/good.pth'
    for got in (CheckpointLoader.load_checkpoint(url, map_location='cpu'),
                load_checkpoint_file(url)):
        assert got['meta']['epoch'] == 1
        assert got['state_dict'].keys() == expected['state_dict'].keys()
        for key, value in expected['state_dict'].items():
            assert torch.equal(got['state_dict'][key], value), key
    assert os.listdir(tmp_downloads) == []  # the downloaded copy is gone


def test_download_without_content_length_loads(served, tmp_downloads):
    got = load_checkpoint_file(served['url'] + '/nolength/good.pth')
    assert got['meta']['epoch'] == 1


@pytest.mark.parametrize('name', ['evil.pth', 'exec.pth'])
def test_malicious_pickle_over_http_is_refused(served, tmp_downloads, name):
    install_safe_loader()
    url = f"{served['url']}/{name}"
    model = torch.nn.Linear(2, 2)
    for load in (lambda: CheckpointLoader.load_checkpoint(url, 'cpu'),
                 lambda: _load_checkpoint(url, map_location='cpu'),
                 lambda: load_checkpoint(model, url, map_location='cpu'),
                 lambda: load_checkpoint_file(url)):
        with pytest.raises(CheckpointError, match='refusing to load') as err:
            load()
        # the message names the URL, not the temporary copy
        assert url in str(err.value) and str(tmp_downloads) not in str(
            err.value)
    assert not served['marker'].exists()
    assert os.listdir(tmp_downloads) == []


@pytest.mark.parametrize('path', ['/good.pth', '/nolength/good.pth'])
def test_download_over_the_size_cap_is_refused(served, tmp_downloads,
                                               monkeypatch, path):
    size = (served['www'] / 'good.pth').stat().st_size
    monkeypatch.setattr(ckpt_mod, 'MAX_DOWNLOAD_BYTES', size - 1)
    with pytest.raises(CheckpointError, match='download limit'):
        load_checkpoint_file(served['url'] + path)
    assert os.listdir(tmp_downloads) == []
    monkeypatch.setattr(ckpt_mod, 'MAX_DOWNLOAD_BYTES', size)
    assert load_checkpoint_file(served['url'] + path)['meta']['epoch'] == 1


def test_slow_server_times_out(served, tmp_downloads, monkeypatch):
    monkeypatch.setattr(ckpt_mod, 'DOWNLOAD_TIMEOUT_S', 0.3)
    with pytest.raises(CheckpointError, match='timed out'):
        load_checkpoint_file(served['url'] + '/slow/good.pth')
    assert os.listdir(tmp_downloads) == []


def test_missing_url_names_the_http_error(served, tmp_downloads):
    with pytest.raises(CheckpointError, match='404') as err:
        load_checkpoint_file(served['url'] + '/nope.pth')
    assert 'pass its local path' in str(err.value)


def test_resume_with_other_scheme_is_refused_by_merge_args(served):
    from bidl_train.cli.common import load_config
    from bidl_train.cli.train import merge_args, parse_args
    args = parse_args([served['cfg'], '--resume', 's3://bucket/epoch_1.pth'])
    with pytest.raises(CheckpointError, match='s3://'):
        merge_args(load_config(served['cfg']), args)


# ---------------------------------------------------------------------------
# the commands, as a user runs them (the tool scripts, run in this process:
# exit status and stderr as a new Python would give them, see run_here)
# ---------------------------------------------------------------------------
def _commands(served, source, out):
    """Every command that reads a checkpoint, reading ``source``."""
    cfg, work = served['cfg'], str(out / 'work')
    return {
        'train --resume': [tool('train'), cfg, '--work-dir', work,
                           '--resume', source, '--cfg-options',
                           'train_cfg.max_epochs=2'],
        'train load_from': [tool('train'), cfg, '--work-dir', work,
                            '--cfg-options', f'load_from={source}'],
        'test': [tool('test'), cfg, source, '--work-dir', work],
        'deploy': [tool('deploy'), cfg, source, '--target', 'torchscript',
                   '--verify', '2', '--out', str(out / 'deploy')],
        'analyze': [tool('analyze'), cfg, source, '--random', '--batches',
                    '1'],
    }


def _refused_in_one_line(proc, *needles):
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert 'Traceback' not in proc.stderr, proc.stderr[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if ': error: ' in ln]
    assert len(errors) == 1, proc.stderr[-2000:]
    for needle in needles:
        assert needle in errors[0], errors[0]


@pytest.mark.parametrize(
    'command', ['train --resume', 'train load_from', 'test', 'deploy',
                'analyze'])
def test_malicious_url_is_refused_by_every_command(served, tmp_path,
                                                   command):
    url = served['url'] + '/evil.pth'
    argv = _commands(served, url, tmp_path)[command]
    proc = run_here(argv, tmp_path, check=False, env_extra=NO_PROXY)
    _refused_in_one_line(proc, 'refusing to load checkpoint', url)
    assert not served['marker'].exists()


# bidl-test and bidl-deploy share bidl-train's error path (user_errors);
# tools/analyze.py has its own
@pytest.mark.parametrize('command', ['train --resume', 'analyze'])
def test_other_scheme_is_refused_by_the_commands(served, tmp_path, command):
    argv = _commands(served, 'pavi://model/epoch_1.pth', tmp_path)[command]
    proc = run_here(argv, tmp_path, check=False)
    _refused_in_one_line(proc, 'pavi://', 'pass its local path')


def test_valid_url_resumes_tests_deploys_and_analyzes(served, tmp_path):
    url = served['url'] + '/good.pth'
    commands = _commands(served, url, tmp_path)
    proc = run_here(commands['train --resume'], tmp_path, env_extra=NO_PROXY)
    assert 'resumed epoch: 1' in proc.stdout + proc.stderr
    assert (tmp_path / 'work' / 'epoch_2.pth').is_file()

    proc = run_here(commands['test'] + ['--out', str(tmp_path / 'm.json')],
               tmp_path, env_extra=NO_PROXY)
    metrics = json.loads((tmp_path / 'm.json').read_text())
    assert metrics['checkpoint'] == url
    assert 0 <= metrics['metrics']['accuracy/top1'] <= 100

    run_here(commands['deploy'], tmp_path, env_extra=NO_PROXY)
    report = json.loads((tmp_path / 'deploy' / 'report.json').read_text())
    assert report['status'] == 'verified'
    # the report names the URL the weights came from, not the temporary copy
    assert report['source']['checkpoint']['path'] == url

    proc = run_here(commands['analyze'], tmp_path, env_extra=NO_PROXY)
    assert 'SynOps' in proc.stdout
