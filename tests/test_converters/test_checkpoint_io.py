"""Reading weight files safely, unwrapping, atomic saving, lenient loading."""
import argparse
import os

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from torch import nn

from mmtwins.converters import (load_into, load_pretrained_state_dict,
                                save_checkpoint_atomically, unwrap_state_dict)


def _weights():
    return {'layer.weight': torch.arange(6.).reshape(2, 3),
            'layer.bias': torch.ones(2)}


def _assert_same(actual, expected):
    assert list(actual) == list(expected)
    for key, value in expected.items():
        assert torch.equal(actual[key], value)


@pytest.mark.parametrize('wrap', [
    lambda w: w,
    lambda w: {'state_dict': w, 'meta': {'epoch': 3}},
    lambda w: {'model': w, 'epoch': 300},
    lambda w: {'state_dict_ema': w},
    lambda w: {'model': {f'module.{k}': v for k, v in w.items()}},
], ids=['flat', 'state_dict', 'model', 'state_dict_ema', 'data_parallel'])
def test_reads_every_wrapping(tmp_path, wrap):
    path = tmp_path / 'weights.pth'
    torch.save(wrap(_weights()), path)
    _assert_same(load_pretrained_state_dict(str(path)), _weights())


def test_explicit_key_picks_the_ema_weights():
    ema = {'layer.bias': torch.zeros(2)}
    checkpoint = {'state_dict': _weights(), 'state_dict_ema': ema}
    _assert_same(unwrap_state_dict(checkpoint), _weights())
    _assert_same(unwrap_state_dict(checkpoint, key='state_dict_ema'), ema)
    with pytest.raises(KeyError, match='no .optimizer.'):
        unwrap_state_dict(checkpoint, key='optimizer')


def test_a_dict_without_weights_is_an_error():
    with pytest.raises(ValueError, match='in.pth: not a state dict.*epoch'):
        unwrap_state_dict({'epoch': 3, 'lr': 0.1}, source='in.pth')


@pytest.mark.parametrize('content', [
    lambda saved: saved[:len(saved) // 2],
    lambda saved: b'',
    lambda saved: b'hello world\n',
], ids=['truncated', 'empty', 'text'])
def test_an_unreadable_file_is_named(tmp_path, content):
    torch.save(_weights(), tmp_path / 'weights.pth')
    broken = tmp_path / 'broken.pth'
    broken.write_bytes(content((tmp_path / 'weights.pth').read_bytes()))
    with pytest.raises(ValueError, match=f'{broken}: not a readable PyTorch checkpoint'):
        load_pretrained_state_dict(str(broken))


@pytest.mark.parametrize('content', [torch.zeros(3), [torch.zeros(3)]], ids=['tensor', 'list'])
def test_a_file_of_no_dict_is_named(tmp_path, content):
    path = tmp_path / 'odd.pth'
    torch.save(content, path)
    with pytest.raises(ValueError, match=f'{path}: not a state dict but a'):
        load_pretrained_state_dict(str(path))
    with pytest.raises(KeyError, match=f'{path}: no .state_dict. in the checkpoint'):
        load_pretrained_state_dict(str(path), key='state_dict')


def test_missing_file_is_named(tmp_path):
    missing = str(tmp_path / 'nowhere.pth')
    with pytest.raises(FileNotFoundError, match='nowhere.pth'):
        load_pretrained_state_dict(missing)


def test_arbitrary_objects_are_refused(tmp_path):
    path = tmp_path / 'unsafe.pth'
    torch.save({'model': _weights(), 'args': argparse.Namespace(lr=1)}, path)
    with pytest.raises(ValueError) as error:
        load_pretrained_state_dict(str(path))
    message = str(error.value)
    assert str(path) in message
    assert 'weights_only=True' in message and 'argparse.Namespace' in message


def test_unreachable_address_says_no_network(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path))
    # Port 9 (discard) on the loopback refuses at once, with or without network.
    url = 'http://127.0.0.1:9/twins_svt_small.pth'
    with pytest.raises(ConnectionError) as error:
        load_pretrained_state_dict(url)
    assert url in str(error.value)
    assert 'no network' in str(error.value) and 'local path' in str(error.value)


def test_atomic_save_replaces_the_file(tmp_path):
    path = tmp_path / 'out.pth'
    torch.save({'old': torch.zeros(1)}, path)
    save_checkpoint_atomically({'state_dict': _weights()}, str(path))
    _assert_same(torch.load(path, weights_only=True)['state_dict'], _weights())
    assert os.listdir(tmp_path) == ['out.pth']


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / 'out.pth'
    torch.save({'old': torch.zeros(1)}, path)

    def broken_save(obj, file):
        file.write(b'partial')
        raise OSError('disk full')

    monkeypatch.setattr(torch, 'save', broken_save)
    with pytest.raises(OSError, match='disk full'):
        save_checkpoint_atomically({'state_dict': _weights()}, str(path))
    monkeypatch.undo()
    assert list(torch.load(path, weights_only=True)) == ['old']
    assert os.listdir(tmp_path) == ['out.pth']


class _Backbone(nn.Module):

    def __init__(self, width=3):
        super().__init__()
        self.layer = nn.Linear(width, 2)
        self.norm = nn.LayerNorm(2)


def test_load_into_reports_missing_unexpected_and_dropped():
    state_dict = {'backbone.layer.weight': torch.ones(2, 3),
                  'backbone.layer.bias': torch.ones(2),
                  'backbone.extra.weight': torch.ones(1),
                  'head.fc.weight': torch.ones(5, 2)}
    backbone = _Backbone()
    report = load_into(backbone, state_dict, prefix='backbone.')

    assert report.loaded_keys == ['layer.bias', 'layer.weight']
    assert report.missing_keys == ['norm.bias', 'norm.weight']
    assert report.unexpected_keys == ['extra.weight']
    assert report.dropped_keys == ['head.fc.weight']
    assert torch.equal(backbone.layer.weight, torch.ones(2, 3))


def test_load_into_refuses_other_shapes():
    backbone = _Backbone(width=4)
    with pytest.raises(ValueError, match=r'layer.weight: checkpoint \(2, 3\), '
                                         r'model \(2, 4\)'):
        load_into(backbone, {'backbone.layer.weight': torch.ones(2, 3)})


def test_reads_weights_from_an_mmengine_runner_checkpoint(tmp_path):
    loss = HistoryBuffer()
    loss.update(np.float64(0.5))
    path = tmp_path / 'epoch_300.pth'
    torch.save({'meta': {'seed': np.int64(0), 'epoch': 300},
                'state_dict': _weights(),
                'message_hub': {'log_scalars': {'train/loss': loss}}}, path)
    _assert_same(load_pretrained_state_dict(str(path)), _weights())
