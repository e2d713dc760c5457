"""The command line of ``tools/model_converters/convert.py``."""
import argparse
import os

import pytest
import torch
from converter_helpers import load_convert_cli, mmpretrain_twins, timm_davit


@pytest.fixture(scope='module')
def cli():
    return load_convert_cli()


def test_prints_format_and_counts_and_writes_meta(tmp_path, cli, capsys):
    source = mmpretrain_twins('twins-pcpvt').state_dict()
    src, dst = tmp_path / 'pcpvt.pth', tmp_path / 'out' / 'pcpvt_mmtwins.pth'
    torch.save({'state_dict': source}, src)

    assert cli.main([str(src), str(dst)]) == 0
    converted = torch.load(dst, weights_only=True)
    assert converted['meta'] == {'source_format': 'mmpretrain',
                                 'family': 'twins-pcpvt'}
    out = capsys.readouterr().out
    assert f'{src}: twins-pcpvt, mmpretrain format, {len(source)} tensors' in out
    assert (f'{dst}: mmtwins format, {len(converted["state_dict"])} tensors'
            in out)
    assert os.listdir(dst.parent) == ['pcpvt_mmtwins.pth']


def test_key_option_selects_the_weights(tmp_path, cli, capsys):
    src, dst = tmp_path / 'ema.pth', tmp_path / 'out.pth'
    torch.save({'state_dict': {'unrelated.weight': torch.zeros(1)},
                'state_dict_ema': timm_davit().state_dict()}, src)

    assert cli.main([str(src), str(dst), '--key', 'state_dict_ema']) == 0
    assert torch.load(dst, weights_only=True)['meta']['source_format'] == 'timm'
    assert cli.main([str(src), str(dst)]) == 1
    assert 'not a Twins' in capsys.readouterr().err


@pytest.mark.parametrize('make_source, options, message', [
    (None, [], 'Checkpoint file not found'),
    (lambda: {'model': {'fc.weight': torch.zeros(1)}}, [], 'not a Twins'),
    (lambda: {'args': argparse.Namespace(lr=1)}, [], 'refused to load'),
    (lambda: torch.zeros(3), [], 'not a state dict but a Tensor'),
    (lambda: {'model': {}}, ['--key', 'ema'], "no 'ema' in the checkpoint"),
], ids=['missing', 'not-twins-or-davit', 'unsafe', 'a-tensor', 'missing-key'])
def test_errors_leave_no_output(tmp_path, cli, capsys, make_source, options, message):
    src, dst = tmp_path / 'in.pth', tmp_path / 'out.pth'
    if make_source is not None:
        torch.save(make_source(), src)

    assert cli.main([str(src), str(dst), *options]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f'error: {src}' if make_source else 'error: ')
    assert message in err and str(src) in err
    assert not dst.exists()


def test_a_truncated_file_is_an_error(tmp_path, cli, capsys):
    src = tmp_path / 'davit.pth'
    torch.save(timm_davit().state_dict(), src)
    src.write_bytes(src.read_bytes()[:1000])
    assert cli.main([str(src), str(tmp_path / 'out.pth')]) == 1
    assert capsys.readouterr().err.startswith(
        f'error: {src}: not a readable PyTorch checkpoint')


def test_wrong_forced_format_is_an_error(tmp_path, cli, capsys):
    src = tmp_path / 'davit.pth'
    torch.save(timm_davit().state_dict(), src)
    assert cli.main([str(src), str(tmp_path / 'out.pth'), '--format', 'mmseg']) == 1
    assert 'formats mmseg' in capsys.readouterr().err
