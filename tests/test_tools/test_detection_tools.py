"""The real train/test tools on a tiny COCO: Mask R-CNN and RetinaNet, mmdet's COCO metric."""
import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from mmdet.evaluation import CocoMetric
from mmdet.registry import DATASETS
from mmdet.structures.mask import PolygonMasks
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope

from tests.helpers import REPO_ROOT, failure_report, python_tool, run_tool
from tests.test_tools.detection_helpers import CATEGORIES, IMAGE_SIZE

# What the tiny detectors reach on the validation images in 80 iterations from random
# weights (untrained ones: about 0.004). RetinaNet's dense head learns the two shapes (mAP
# about 0.9); Mask R-CNN's RoI head learns where they are (mAP at IoU 0.5 about 0.55) before
# it learns their exact extent.
LEARNED = {'retinanet': {'bbox_mAP': 0.6},
           'mask-rcnn': {'bbox_mAP_50': 0.3, 'segm_mAP_50': 0.3}}


@pytest.mark.parametrize('kind', ['mask-rcnn', 'retinanet'])
def test_training_learns_the_shapes(trained_detectors, kind):
    detector = trained_detectors[kind]
    assert detector.checkpoint.is_file()
    for metric, bar in LEARNED[kind].items():
        assert detector.validation[metric] > bar, metric
    losses = [record['loss'] for record in detector.records if 'loss' in record]
    assert losses[-1] < losses[0]


def test_test_tool_repeats_the_validation_and_dumps_predictions(trained_detectors, tmp_path):
    detector = trained_detectors['mask-rcnn']
    result = python_tool('test.py', str(detector.config), str(detector.checkpoint),
                         '--work-dir', str(tmp_path), '--out', str(tmp_path / 'results.pkl'))
    assert result.returncode == 0, result.stderr[-4000:]
    (metrics_file, ) = tmp_path.glob('*/*.json')
    metrics = json.loads(metrics_file.read_text())
    assert metrics['coco/bbox_mAP'] == detector.validation['bbox_mAP']
    assert metrics['coco/segm_mAP'] == detector.validation['segm_mAP']
    with open(tmp_path / 'results.pkl', 'rb') as file:
        predictions = pickle.load(file)
    assert len(predictions) == 6
    instances = predictions[0]['pred_instances']
    assert instances['bboxes'].shape[1] == 4 and len(instances['masks']) == len(
        instances['bboxes'])


def coco_metric(tiny_coco: Path, predictions: list, metrics=('bbox', 'segm')) -> dict:
    metric = CocoMetric(ann_file=str(tiny_coco / 'annotations' / 'instances_val2017.json'),
                        metric=list(metrics))
    metric.dataset_meta = dict(classes=tuple(name for name, _ in CATEGORIES.values()))
    metric.process([], predictions)
    return metric.compute_metrics(metric.results)


def shifted_polygon(annotation: dict, shift: float) -> np.ndarray:
    polygon = np.array(annotation['segmentation'][0])
    polygon[0::2] += shift  # x, y, x, y, ...
    return polygon


def ground_truth_as_predictions(tiny_coco: Path, shift: float = 0.0) -> list:
    """One prediction per annotation of the validation file, optionally shifted right."""
    annotations = json.loads(
        (tiny_coco / 'annotations' / 'instances_val2017.json').read_text())
    predictions = []
    for image in annotations['images']:
        objects = [a for a in annotations['annotations'] if a['image_id'] == image['id']]
        boxes = np.array([a['bbox'] for a in objects], dtype=np.float32)
        boxes[:, 2:] += boxes[:, :2]
        boxes[:, [0, 2]] += shift
        masks = PolygonMasks([[shifted_polygon(a, shift)] for a in objects],
                             *IMAGE_SIZE).to_ndarray()
        predictions.append(dict(
            img_id=image['id'], ori_shape=IMAGE_SIZE,
            pred_instances=dict(
                bboxes=torch.from_numpy(boxes), scores=torch.ones(len(objects)),
                labels=torch.tensor([a['category_id'] - 1 for a in objects]),
                masks=torch.from_numpy(masks).bool())))
    return predictions


def test_coco_metric_known_answers(tiny_coco):
    perfect = coco_metric(tiny_coco, ground_truth_as_predictions(tiny_coco))
    assert perfect['bbox_mAP'] == 1.0 and perfect['segm_mAP'] == 1.0
    # every object shifted right by 40 pixels (sides are 40 to 60): IoU at most 0.2
    missed = coco_metric(tiny_coco, ground_truth_as_predictions(tiny_coco, shift=40.0))
    assert missed['bbox_mAP'] == 0.0 and missed['segm_mAP'] == 0.0


def test_multi_scale_crop_pipeline_on_coco_annotations(tiny_coco):
    """The 3x training pipeline (random choice of resize or crop) keeps boxes and masks."""
    config = Config.fromfile(REPO_ROOT / 'configs/twins/mask-rcnn_svt-s_fpn_ms-crop-3x_coco.py')
    dataset_cfg = config.train_dataloader.dataset
    dataset_cfg.update(data_root=str(tiny_coco) + '/', metainfo=dict(
        classes=tuple(name for name, _ in CATEGORIES.values())))
    with DefaultScope.overwrite_default_scope('mmdet'):
        init_default_scope('mmdet')
        dataset = DATASETS.build(dataset_cfg)
    torch.manual_seed(0)
    np.random.seed(0)
    short_sides = set()
    for index in range(len(dataset)):
        sample = dataset[index]['data_samples']
        instances = sample.gt_instances
        height, width = sample.img_shape
        short_sides.add(min(height, width))
        assert len(instances.masks) == len(instances.bboxes) > 0
        assert (instances.bboxes.tensor[:, 2:] <= torch.tensor([width, height])).all()
    assert max(short_sides) <= 800 and len(short_sides) > 1


def test_missing_coco_stops_with_the_expected_layout(tmp_path):
    result = python_tool(
        'train.py', str(REPO_ROOT / 'configs/davit/retinanet_davit-t_fpn_ms-crop-1x_coco.py'),
        '--work-dir', str(tmp_path / 'work'), cwd=tmp_path)
    assert result.returncode == 1
    assert 'Traceback' not in result.stderr
    assert "'data/coco/'" in result.stderr
    assert 'docs/detection.md#prepare-coco' in result.stderr


def test_distributed_test_on_cpu_gives_the_single_process_metrics(trained_detectors,
                                                                  tmp_path):
    detector = trained_detectors['retinanet']
    result = run_tool('bash', str(REPO_ROOT / 'tools/dist_test.sh'), str(detector.config),
                      str(detector.checkpoint), '2', '--work-dir', str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, failure_report(result)
    # from the log: every rank writes the metrics json, which may garble it (MMEngine 0.10.7)
    (logged, ) = re.findall(r'Epoch\(test\).* coco/bbox_mAP: ([\d.]+)',
                            result.stdout + result.stderr)
    assert float(logged) == detector.validation['bbox_mAP']
