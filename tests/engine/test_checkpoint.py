"""Checkpoints load with weights_only=True and a narrow allow-list only."""

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

from bidl_train.engine.checkpoint import install_safe_loader, safe_load
from bidl_train.errors import CheckpointError
from helpers.payloads import RunsShell


def _mmengine_like_checkpoint(path):
    """What mmengine's Runner saves: weights, optimizer, message hub."""
    model = torch.nn.Linear(3, 2)
    optim = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    optim.step()
    hub = MessageHub.get_instance('test_checkpoint')
    hub.update_scalar('train/loss', 0.5)
    hub.update_scalar('train/loss', 0.25)
    hub.update_info('seed', 3)
    torch.save(
        dict(meta=dict(epoch=1, iter=10, seed=3),
             state_dict=model.state_dict(),
             optimizer=optim.state_dict(),
             message_hub=hub.state_dict(),
             extra=np.arange(4, dtype=np.int64)), path)
    return model


def test_mmengine_checkpoint_loads_with_history_buffers(tmp_path):
    path = tmp_path / 'ok.pth'
    model = _mmengine_like_checkpoint(path)
    ckpt = safe_load(path)
    assert torch.equal(ckpt['state_dict']['weight'], model.weight)
    buffer = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.mean() == pytest.approx(0.375)
    assert ckpt['extra'].tolist() == [0, 1, 2, 3]


def test_pickle_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save(dict(state_dict={}, x=RunsShell(marker)), path)
    with pytest.raises(CheckpointError, match='refusing to load'):
        safe_load(path)
    assert not marker.exists()


class _ArbitraryClass:
    pass


def test_unknown_class_is_refused(tmp_path):
    path = tmp_path / 'cls.pth'
    torch.save(dict(obj=_ArbitraryClass()), path)
    with pytest.raises(CheckpointError, match='_ArbitraryClass'):
        safe_load(path)


class _SneakyGetattr:

    def __reduce__(self):
        # getattr is allowed only for HistoryBuffer's statistics methods
        return (getattr, (HistoryBuffer, 'register_statistics'))


def test_getattr_is_restricted_to_history_buffer_statistics(tmp_path):
    path = tmp_path / 'getattr.pth'
    torch.save(dict(obj=_SneakyGetattr()), path)
    with pytest.raises(CheckpointError, match='statistics'):
        safe_load(path)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(CheckpointError, match='nope.pth'):
        safe_load(tmp_path / 'nope.pth')


def test_mmengine_loader_is_routed_through_safe_load(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint
    install_safe_loader()
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save(dict(state_dict={}, x=RunsShell(marker)), path)
    with pytest.raises(CheckpointError):
        _load_checkpoint(str(path), map_location='cpu')
    assert not marker.exists()
