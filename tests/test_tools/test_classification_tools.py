"""The real train/test tools on a tiny dataset, single-process and distributed on CPU."""
import json
import os
import pickle
import re
import sys
from pathlib import Path

import pytest
import timm
import torch

from tests.helpers import (REPO_ROOT, TINY_DAVIT, TINY_SVT, failure_report, python_tool,
                           run_tool, tiny_classification_config)

CONFIGS = {
    'twins': ('configs/twins/svt-s_8xb128_in1k.py', TINY_SVT),
    'davit': ('configs/davit/davit-t_4xb256_in1k.py', TINY_DAVIT),
}


def logged_test_accuracy(work_dir: Path) -> float:
    """The top-1 accuracy of the last ``tools/test.py`` run in ``work_dir``, from its log.

    The log, which only rank 0 writes: in distributed runs MMEngine writes the metrics JSON
    from every process into one file.
    """
    logs = sorted(work_dir.glob('*/*.log'), key=os.path.getmtime)
    return float(re.findall(r'accuracy/top1: ([\d.]+)', logs[-1].read_text())[-1])


@pytest.fixture(scope='module', params=sorted(CONFIGS))
def trained(request, colour_dataset, tmp_path_factory):
    """A tiny model of each family trained for 2 epochs with tools/train.py."""
    base_config, arch = CONFIGS[request.param]
    work_dir = tmp_path_factory.mktemp(f'{request.param}_train')
    config = work_dir / 'tiny.py'
    config.write_text(tiny_classification_config(base_config, arch, colour_dataset, 2))
    result = python_tool('train.py', str(config), '--work-dir', str(work_dir))
    assert result.returncode == 0, result.stderr[-4000:]
    return config, work_dir



def test_train_writes_checkpoints_and_validates(trained):
    _, work_dir = trained
    assert (work_dir / 'epoch_2.pth').is_file()
    assert (work_dir / 'last_checkpoint').read_text().strip().endswith('epoch_2.pth')
    logs = list(work_dir.glob('*/vis_data/scalars.json'))
    records = [json.loads(line) for line in logs[0].read_text().splitlines()]
    assert any('accuracy/top1' in record for record in records)
    assert any('loss' in record for record in records)


def test_test_tool_evaluates_and_dumps_predictions(trained, tmp_path):
    config, work_dir = trained
    out = tmp_path / 'predictions.pkl'
    result = python_tool('test.py', str(config), str(work_dir / 'epoch_2.pth'),
                         '--work-dir', str(tmp_path), '--out', str(out))
    assert result.returncode == 0, result.stderr[-4000:]
    assert 0.0 <= logged_test_accuracy(tmp_path) <= 100.0
    assert out.is_file() and out.stat().st_size > 0


def test_resume_continues_training(trained, tmp_path):
    config, work_dir = trained
    result = python_tool('train.py', str(config), '--work-dir', str(tmp_path), '--resume',
                         str(work_dir / 'epoch_1.pth'))
    assert result.returncode == 0, result.stderr[-4000:]
    assert 'resumed epoch: 1' in (result.stdout + result.stderr)
    assert (tmp_path / 'epoch_2.pth').is_file() and not (tmp_path / 'epoch_1.pth').exists()


def test_distributed_train_and_test_on_cpu(colour_dataset, tmp_path):
    base_config, arch = CONFIGS['twins']
    config = tmp_path / 'tiny.py'
    config.write_text(tiny_classification_config(base_config, arch, colour_dataset, 1))
    train = run_tool('bash', str(REPO_ROOT / 'tools/dist_train.sh'), str(config), '2',
                     '--work-dir', str(tmp_path / 'dist'), cwd=tmp_path)
    assert train.returncode == 0, failure_report(train)
    checkpoint = tmp_path / 'dist' / 'epoch_1.pth'
    assert checkpoint.is_file()

    single = python_tool('test.py', str(config), str(checkpoint), '--work-dir',
                         str(tmp_path / 'single_test'))
    assert single.returncode == 0, single.stderr[-4000:]
    distributed = run_tool('bash', str(REPO_ROOT / 'tools/dist_test.sh'), str(config),
                           str(checkpoint), '2', '--work-dir', str(tmp_path / 'dist_test'),
                           cwd=tmp_path)
    assert distributed.returncode == 0, failure_report(distributed)
    single_accuracy = logged_test_accuracy(tmp_path / 'single_test')
    assert logged_test_accuracy(tmp_path / 'dist_test') == single_accuracy


def test_missing_imagenet_stops_with_the_expected_layout(tmp_path):
    result = python_tool('train.py', str(REPO_ROOT / 'configs/twins/svt-s_8xb128_in1k.py'),
                         '--work-dir', str(tmp_path / 'work'), cwd=tmp_path)
    assert result.returncode == 1
    assert 'Traceback' not in result.stderr
    assert "'data/imagenet'" in result.stderr
    assert 'docs/classification.md#prepare-imagenet' in result.stderr


def test_bad_config_path_is_named(tmp_path):
    result = python_tool('test.py', 'configs/nope.py', 'weights.pth', cwd=tmp_path)
    assert result.returncode == 1
    assert "config file 'configs/nope.py' does not exist" in result.stderr


def test_test_tool_takes_official_weights(colour_dataset, tmp_path):
    """An official (== timm) Twins file gives the predictions of its converted checkpoint."""
    config = tmp_path / 'tiny.py'
    config.write_text(tiny_classification_config(CONFIGS['twins'][0], TINY_SVT, colour_dataset))
    official = timm.create_model(
        'twins_svt_small', num_classes=2, embed_dims=TINY_SVT['embed_dims'],
        depths=TINY_SVT['depths'], num_heads=TINY_SVT['num_heads'],
        mlp_ratios=TINY_SVT['mlp_ratios'])
    torch.save(official.state_dict(), tmp_path / 'alt_gvt_tiny.pth')
    converted = run_tool(sys.executable, str(REPO_ROOT / 'tools/model_converters/convert.py'),
                         str(tmp_path / 'alt_gvt_tiny.pth'), str(tmp_path / 'mmtwins.pth'))
    assert converted.returncode == 0, converted.stderr[-3000:]

    predictions = {}
    for name in ('alt_gvt_tiny.pth', 'mmtwins.pth'):
        result = python_tool('test.py', str(config), str(tmp_path / name), '--work-dir',
                             str(tmp_path / name[:-4]), '--out', str(tmp_path / f'{name}.pkl'))
        assert result.returncode == 0, result.stderr[-3000:]
        assert 'missing keys' not in result.stdout + result.stderr
        with open(tmp_path / f'{name}.pkl', 'rb') as file:
            predictions[name] = torch.stack([p['pred_score'] for p in pickle.load(file)])
    assert torch.allclose(predictions['alt_gvt_tiny.pth'], predictions['mmtwins.pth'])


def test_test_tool_without_network_says_so(colour_dataset, tmp_path):
    config = tmp_path / 'tiny.py'
    config.write_text(tiny_classification_config(CONFIGS['twins'][0], TINY_SVT, colour_dataset))
    result = python_tool('test.py', str(config), 'https://unreachable.invalid/alt_gvt_small.pth',
                         '--work-dir', str(tmp_path / 'work'))
    assert result.returncode == 1
    assert 'Traceback' not in result.stderr
    assert 'Could not download https://unreachable.invalid/alt_gvt_small.pth' in result.stderr
