"""A tiny COCO-layout dataset with known boxes and masks, and tiny detection configs."""
import json
import os.path as osp
from pathlib import Path
from typing import List, NamedTuple, Tuple

import numpy as np
from PIL import Image, ImageDraw

from tests.helpers import REPO_ROOT, python_tool

# Category id (1-based, as in COCO files) -> (name, colour of its pixels).
CATEGORIES = {1: ('square', (220, 60, 60)), 2: ('disc', (60, 60, 220))}
# Neither side a multiple of 32: the detectors' data preprocessor pads.
IMAGE_SIZE = (100, 150)  # (H, W)
DISC_POINTS = 24
# What the session fixture `trained_detectors` (tests/conftest.py) trains, and how long.
TRAINED_CONFIGS = {
    'mask-rcnn': 'configs/twins/mask-rcnn_svt-s_fpn_1x_coco.py',
    'retinanet': 'configs/twins/retinanet_pcpvt-s_fpn_1x_coco.py',
}
DETECTOR_EPOCHS = 20


def _square(rng: np.random.Generator) -> List[float]:
    side = int(rng.integers(40, 60))
    top, left = int(rng.integers(4, IMAGE_SIZE[0] - side - 4)), int(rng.integers(4, 66 - side))
    return [float(v) for v in
            (left, top, left + side, top, left + side, top + side, left, top + side)]


def _disc(rng: np.random.Generator) -> List[float]:
    radius = rng.integers(20, 30)
    centre_y = rng.integers(radius + 4, IMAGE_SIZE[0] - radius - 4)
    centre_x = rng.integers(70 + radius, IMAGE_SIZE[1] - radius - 2)
    angles = np.linspace(0, 2 * np.pi, DISC_POINTS, endpoint=False)
    return np.stack([centre_x + radius * np.cos(angles),
                     centre_y + radius * np.sin(angles)], 1).ravel().round(1).tolist()


def _polygon_area(polygon: List[float]) -> float:
    x, y = np.asarray(polygon[0::2]), np.asarray(polygon[1::2])
    return float(abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2)


def _annotation(polygon: List[float], category: int, image_id: int, ann_id: int) -> dict:
    x, y = polygon[0::2], polygon[1::2]
    box = [min(x), min(y), max(x) - min(x), max(y) - min(y)]
    return dict(id=ann_id, image_id=image_id, category_id=category, segmentation=[polygon],
                area=_polygon_area(polygon), bbox=box, iscrowd=0)


def _draw(objects: List[Tuple[List[float], int]], rng: np.random.Generator) -> Image.Image:
    """Dark noise with each object filled in its category's colour."""
    noise = rng.integers(0, 50, (*IMAGE_SIZE, 3), dtype=np.uint8)
    image = Image.fromarray(noise)
    draw = ImageDraw.Draw(image)
    for polygon, category in objects:
        draw.polygon(polygon, fill=CATEGORIES[category][1])
    return image


def write_coco(root: Path, train_images: int = 16, val_images: int = 6, seed: int = 0) -> Path:
    """Writes ``root/coco`` in COCO 2017's layout; returns that folder.

    Every image holds a square on its left half and a disc on its right half (boxes and
    polygon masks exactly known): ``train2017/``, ``val2017/`` and
    ``annotations/instances_{train,val}2017.json``.
    """
    rng = np.random.default_rng(seed)
    data_root = root / 'coco'
    (data_root / 'annotations').mkdir(parents=True, exist_ok=True)
    categories = [dict(id=i, name=name) for i, (name, _) in CATEGORIES.items()]
    ann_id = 1
    for split, count in (('train2017', train_images), ('val2017', val_images)):
        (data_root / split).mkdir(exist_ok=True)
        images, annotations = [], []
        for image_id in range(1, count + 1):
            objects = [(_square(rng), 1), (_disc(rng), 2)]
            file_name = f'{image_id:012d}.jpg'
            _draw(objects, rng).save(data_root / split / file_name, quality=95)
            images.append(dict(id=image_id, file_name=file_name, height=IMAGE_SIZE[0],
                               width=IMAGE_SIZE[1]))
            for polygon, category in objects:
                annotations.append(_annotation(polygon, category, image_id, ann_id))
                ann_id += 1
        (data_root / 'annotations' / f'instances_{split}.json').write_text(
            json.dumps(dict(images=images, annotations=annotations, categories=categories)))
    return data_root


def _shrunk_heads(base_config: str) -> str:
    """Heads of the detector with few channels, for the two categories."""
    if osp.basename(base_config).startswith('retinanet'):
        return "bbox_head=dict(num_classes=2, in_channels=32, feat_channels=32, stacked_convs=2)"
    # finest_scale: RoIs of these objects (50 to 80 pixels) pool from the stride-16 level
    # rather than stride 4, whose features the tiny backbone computes with one shallow stage;
    # there the RoI head learns the shapes in a test's budget.
    return ("rpn_head=dict(in_channels=32, feat_channels=32),\n"
            "    roi_head=dict(\n"
            "        bbox_roi_extractor=dict(out_channels=32, finest_scale=14),\n"
            "        bbox_head=dict(num_classes=2, in_channels=32, fc_out_channels=64),\n"
            "        mask_roi_extractor=dict(out_channels=32, finest_scale=14),\n"
            "        mask_head=dict(num_classes=2, in_channels=32, conv_out_channels=32))")


def tiny_detection_config(base_config: str, backbone_arch: dict, data_root: Path,
                          max_epochs: int) -> str:
    """Text of a config inheriting a real one: tiny backbone, neck and heads, small images.

    The backbone starts from random weights (no download); the learning rate is raised and
    the warm-up shortened so that a few epochs learn the two shapes.
    """
    dims = list(backbone_arch['embed_dims'])
    annotations = ("with_bbox=True" if osp.basename(base_config).startswith('retinanet') else
                   "with_bbox=True, with_mask=True")
    loader = 'batch_size=4, num_workers=0, persistent_workers=False'
    dataset = (f"data_root={str(data_root) + '/'!r}, "
               f"metainfo=dict(classes={tuple(name for name, _ in CATEGORIES.values())!r})")
    return f"""
_base_ = [{osp.join(str(REPO_ROOT), base_config)!r}]
model = dict(
    backbone=dict(arch=dict(_delete_=True, **{backbone_arch!r}), init_cfg=None),
    neck=dict(in_channels={dims}, out_channels=32),
    {_shrunk_heads(base_config)})
train_pipeline = [
    dict(type='mmtwins.SafeLoadImageFromFile'),
    dict(type='LoadAnnotations', {annotations}),
    dict(type='Resize', scale=(192, 128), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='mmtwins.SafeLoadImageFromFile'),
    dict(type='Resize', scale=(192, 128), keep_ratio=True),
    dict(type='LoadAnnotations', {annotations}),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict({loader}, dataset=dict({dataset}, pipeline=train_pipeline))
val_dataloader = dict({loader}, dataset=dict({dataset}, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file={str(data_root / 'annotations' / 'instances_val2017.json')!r})
test_evaluator = val_evaluator
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=8),
    dict(type='MultiStepLR', begin=0, end={max_epochs}, by_epoch=True,
         milestones=[{max_epochs - 2}], gamma=0.1),
]
train_cfg = dict(max_epochs={max_epochs}, val_interval={max_epochs})
default_hooks = dict(logger=dict(interval=4), checkpoint=dict(interval={max_epochs}))
randomness = dict(seed=0)
"""


class TrainedDetector(NamedTuple):
    config: Path
    checkpoint: Path
    records: List[dict]  # the training log: losses, then the validation metrics

    @property
    def validation(self) -> dict:
        """The COCO metrics of the validation after the last epoch, e.g. ``bbox_mAP``."""
        (record, ) = [record for record in self.records if 'coco/bbox_mAP' in record]
        return {key[len('coco/'):]: value for key, value in record.items()
                if key.startswith('coco/')}


def train_detector(base_config: str, backbone_arch: dict, data_root: Path, work_dir: Path,
                   max_epochs: int) -> TrainedDetector:
    """Trains a tiny detector of ``base_config`` with ``tools/train.py``."""
    config = work_dir / 'tiny.py'
    config.write_text(tiny_detection_config(base_config, backbone_arch, data_root, max_epochs))
    result = python_tool('train.py', str(config), '--work-dir', str(work_dir))
    assert result.returncode == 0, result.stderr[-4000:]
    log = next(work_dir.glob('*/vis_data/scalars.json')).read_text().splitlines()
    return TrainedDetector(config, work_dir / f'epoch_{max_epochs}.pth',
                           [json.loads(line) for line in log])
