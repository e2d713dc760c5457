"""The real train/test tools on a tiny ADE20K: UperNet and Semantic FPN, ss, --tta, slide."""
import json
import re
from pathlib import Path
from typing import Dict, List, NamedTuple

import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.evaluation import IoUMetric
from mmseg.structures import SegDataSample

from tests.helpers import (REPO_ROOT, TINY_PCPVT, TINY_SVT, failure_report, python_tool,
                           run_tool)
from tests.test_tools.segmentation_helpers import tiny_segmentation_config, write_ade20k

ITERATIONS = 40
CONFIGS = {
    'upernet': ('configs/twins/upernet_svt-s_8xb2-160k_ade20k-512x512.py', TINY_SVT),
    'fpn': ('configs/twins/fpn_pcpvt-s_8xb4-80k_ade20k-512x512.py', TINY_PCPVT),
}
# On the three-class tiny dataset an untrained model scores below 1, one that always predicts
# the commonest class about 15.
LEARNED_MIOU = 50


@pytest.fixture(scope='module')
def ade20k(tmp_path_factory) -> Path:
    return write_ade20k(tmp_path_factory.mktemp('ade'))


class Trained(NamedTuple):
    config: Path
    checkpoint: Path
    records: List[dict]  # the training log: losses, then the validation metrics

    @property
    def validation_miou(self) -> float:
        (validation, ) = [record for record in self.records if 'mIoU' in record]
        return validation['mIoU']


@pytest.fixture(scope='module')
def trained(ade20k, tmp_path_factory) -> Dict[str, Trained]:
    """A tiny UperNet and a tiny Semantic FPN trained a few iterations with tools/train.py."""
    models = {}
    for kind, (base_config, arch) in CONFIGS.items():
        work_dir = tmp_path_factory.mktemp(f'{kind}_train')
        config = work_dir / 'tiny.py'
        config.write_text(tiny_segmentation_config(base_config, arch, ade20k, ITERATIONS))
        result = python_tool('train.py', str(config), '--work-dir', str(work_dir))
        assert result.returncode == 0, result.stderr[-4000:]
        log = next(work_dir.glob('*/vis_data/scalars.json')).read_text().splitlines()
        models[kind] = Trained(config, work_dir / f'iter_{ITERATIONS}.pth',
                               [json.loads(line) for line in log])
    return models


def miou_of_test_run(trained: Trained, work_dir: Path, *options: str) -> float:
    """The mIoU ``tools/test.py`` gives the trained model with ``options``."""
    result = python_tool('test.py', str(trained.config), str(trained.checkpoint),
                         '--work-dir', str(work_dir), *options)
    assert result.returncode == 0, result.stderr[-4000:]
    (metrics, ) = work_dir.glob('*/*.json')
    return json.loads(metrics.read_text())['mIoU']


@pytest.mark.parametrize('kind', sorted(CONFIGS))
def test_training_learns_the_colours(trained, kind):
    model = trained[kind]
    assert model.checkpoint.is_file()
    assert model.validation_miou > LEARNED_MIOU
    losses = [record['loss'] for record in model.records if 'loss' in record]
    assert losses[-1] < losses[0]


@pytest.mark.parametrize('kind', sorted(CONFIGS))
def test_single_scale_test_repeats_the_validation(trained, kind, tmp_path):
    assert miou_of_test_run(trained[kind], tmp_path) == trained[kind].validation_miou


@pytest.mark.parametrize('options', [
    ['--tta'],
    ['--cfg-options', 'model.test_cfg.mode=slide', 'model.test_cfg.crop_size=(48,48)',
     'model.test_cfg.stride=(32,32)'],
], ids=['multi-scale-flip', 'sliding-window'])
def test_other_test_modes_predict_with_the_trained_weights(trained, tmp_path, options):
    miou = miou_of_test_run(trained['upernet'], tmp_path, *options)
    # other inputs than the single-scale test, from a model that learned
    assert miou > LEARNED_MIOU and miou != trained['upernet'].validation_miou


def test_distributed_train_and_test_on_cpu(trained, ade20k, tmp_path):
    config = tmp_path / 'tiny.py'
    config.write_text(tiny_segmentation_config(*CONFIGS['upernet'], ade20k, max_iters=2))
    # The heads' SyncBN needs GPUs: our Runner turns it into plain BN on CPUs (gloo).
    train = run_tool('bash', str(REPO_ROOT / 'tools/dist_train.sh'), str(config), '2',
                     '--work-dir', str(tmp_path / 'train'), cwd=tmp_path)
    assert train.returncode == 0, failure_report(train)
    assert (tmp_path / 'train' / 'iter_2.pth').is_file()

    single = trained['upernet']
    test = run_tool('bash', str(REPO_ROOT / 'tools/dist_test.sh'), str(single.config),
                    str(single.checkpoint), '2', '--work-dir', str(tmp_path / 'test'),
                    cwd=tmp_path)
    assert test.returncode == 0, failure_report(test)
    # from the log: every rank writes the metrics json, which may garble it (MMEngine 0.10.7)
    (logged, ) = re.findall(r'Iter\(test\).* mIoU: ([\d.]+)', test.stdout + test.stderr)
    assert float(logged) == pytest.approx(single.validation_miou, abs=0.005)


def sample(prediction: np.ndarray, ground_truth: np.ndarray) -> dict:
    data = SegDataSample(pred_sem_seg=PixelData(data=torch.from_numpy(prediction)[None]),
                         gt_sem_seg=PixelData(data=torch.from_numpy(ground_truth)[None]))
    return data.to_dict()


def iou_metric(pairs) -> dict:
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dict(classes=('a', 'b', 'c'))
    metric.process([], [sample(prediction, truth) for prediction, truth in pairs])
    return metric.compute_metrics(metric.results)


def test_iou_metric_known_answers():
    truth = np.array([[0, 0, 1, 1], [2, 2, 255, 255]])
    assert iou_metric([(truth, truth)])['mIoU'] == 100.0
    # class 0: 2 / 3 (one pixel of 1 called 0); class 1: 1 / 2; class 2: 2 / 2; 255 ignored
    prediction = np.array([[0, 0, 0, 1], [2, 2, 0, 1]])
    assert iou_metric([(prediction, truth)])['mIoU'] == pytest.approx(
        100 * (2 / 3 + 1 / 2 + 1) / 3, abs=0.01)


def test_missing_ade20k_stops_with_the_expected_layout(tmp_path):
    result = python_tool(
        'train.py', str(REPO_ROOT / 'configs/twins/fpn_svt-s_8xb4-80k_ade20k-512x512.py'),
        '--work-dir', str(tmp_path / 'work'), cwd=tmp_path)
    assert result.returncode == 1
    assert 'Traceback' not in result.stderr
    assert "'data/ade/ADEChallengeData2016'" in result.stderr
    assert 'docs/segmentation.md#prepare-ade20k' in result.stderr


def test_tta_needs_a_tta_pipeline(tmp_path):
    result = python_tool('test.py', str(REPO_ROOT / 'configs/twins/svt-s_8xb128_in1k.py'),
                         'weights.pth', '--tta', cwd=tmp_path)
    assert result.returncode == 1
    assert 'Traceback' not in result.stderr
    assert (f"--tta needs tta_pipeline and tta_model in the config "
            f"{REPO_ROOT / 'configs/twins/svt-s_8xb128_in1k.py'}; the segmentation configs "
            f"have them") in result.stderr
