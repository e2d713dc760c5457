"""The verified stack imports together, and mmcv's compiled ops give the right answers."""
import subprocess
import sys

import pytest
import torch

from mmtwins.utils import check_mmcv_ops, collect_env


def test_stack_imports_in_one_process():
    code = ('import mmtwins, mmtwins.models, mmpretrain.models, mmseg.models, mmdet.models, '
            'mmcv.ops, timm; print("ok")')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'ok'


def test_nms_suppresses_the_overlapping_box():
    from mmcv.ops import nms
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.], [20., 20., 30., 30.],
                          [0., 0., 10., 9.]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    # IoU(3, 0) = 90 / 100 and IoU(3, 1) = 72 / 127 are above 0.5; box 2 overlaps nothing.
    detections, keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [3, 2]
    assert detections[:, 4].tolist() == pytest.approx([0.95, 0.7])


def test_roi_align_averages_a_linear_ramp():
    from mmcv.ops import RoIAlign
    ramp = torch.arange(16.).repeat(16, 1)[None, None]  # value = x coordinate
    rois = torch.tensor([[0., 2., 3., 10., 7.]])  # x from 2 to 10: bin centres 4 and 8
    pooled = RoIAlign((1, 2), spatial_scale=1.0, sampling_ratio=2, aligned=True)(ramp, rois)
    # aligned=True shifts by half a pixel: pixel i covers [i, i + 1) and has value i.
    assert pooled.flatten().tolist() == pytest.approx([3.5, 7.5])


def test_check_mmcv_ops_passes_and_env_lists_the_stack():
    check_mmcv_ops()
    info = collect_env()
    for name in ('MMCV', 'MMPretrain', 'MMSegmentation', 'MMDetection', 'timm', 'mmtwins'):
        assert name in info
