"""A tiny ADE20K-layout dataset with known label maps, and tiny segmentation configs."""
import os.path as osp
from pathlib import Path

import numpy as np
from PIL import Image

from tests.helpers import REPO_ROOT

# ADE20K label (1-based in the files; 0 is "other", ignored) -> the colour of its pixels.
REGION_COLOURS = {1: (200, 40, 40), 3: (40, 40, 200), 5: (40, 200, 40)}
# Neither side a multiple of 32 (nor of the 7-token windows after the stride-4 stem).
IMAGE_SIZE = (75, 90)  # (H, W)


def label_map(rng: np.random.Generator, size=IMAGE_SIZE) -> np.ndarray:
    """Left part label 1, right part 3, a square of 5 inside, a border of 0 (ignored)."""
    height, width = size
    labels = np.ones(size, dtype=np.uint8)
    labels[:, rng.integers(width // 3, 2 * width // 3):] = 3
    top, left = rng.integers(5, height // 2), rng.integers(5, width // 2)
    labels[top:top + height // 3, left:left + width // 3] = 5
    labels[:2], labels[:, :2] = 0, 0
    return labels


def image_of(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An RGB image whose pixels have the colour of their label, plus noise."""
    image = rng.integers(0, 40, (*labels.shape, 3)).astype(np.int16)
    for label, colour in REGION_COLOURS.items():
        image[labels == label] += np.array(colour, dtype=np.int16)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_ade20k(root: Path, train_images: int = 8, val_images: int = 4, seed: int = 0) -> Path:
    """Writes ``root/ADEChallengeData2016`` in the released layout; returns that folder.

    Images are ``images/{training,validation}/*.jpg``, label maps
    ``annotations/{training,validation}/*.png`` (uint8, ADE20K's 1-based labels).
    """
    rng = np.random.default_rng(seed)
    data_root = root / 'ADEChallengeData2016'
    for split, count in (('training', train_images), ('validation', val_images)):
        (data_root / 'images' / split).mkdir(parents=True, exist_ok=True)
        (data_root / 'annotations' / split).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            labels = label_map(rng)
            name = f'ADE_{split[:5]}_{index:08d}'
            Image.fromarray(image_of(labels, rng)).save(
                data_root / 'images' / split / f'{name}.jpg', quality=95)
            Image.fromarray(labels).save(data_root / 'annotations' / split / f'{name}.png')
    return data_root


def tiny_segmentation_config(base_config: str, backbone_arch: dict, data_root: Path,
                             max_iters: int) -> str:
    """Text of a config inheriting a real one: tiny backbone and heads, 64 px crops.

    The backbone starts from random weights (no download); the learning rate is raised so
    that a few iterations learn the colours of the tiny dataset.
    """
    dims = list(backbone_arch['embed_dims'])
    is_fpn = osp.basename(base_config).startswith('fpn_')
    heads = (f"neck=dict(in_channels={dims}, out_channels=32),\n"
             f"    decode_head=dict(in_channels=[32] * 4, channels=16)" if is_fpn else
             f"decode_head=dict(in_channels={dims}, channels=32),\n"
             f"    auxiliary_head=dict(in_channels={dims[2]}, channels=16)")
    loader = 'batch_size=4, num_workers=0, persistent_workers=False'
    return f"""
_base_ = [{osp.join(str(REPO_ROOT), base_config)!r}]
crop_size = (64, 64)
data_preprocessor = dict(size=crop_size)
model = dict(
    backbone=dict(arch=dict(_delete_=True, **{backbone_arch!r}), init_cfg=None),
    {heads})
train_pipeline = [
    dict(type='mmtwins.SafeLoadImageFromFile', on_error='skip', max_skipped=100),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(128, 64), ratio_range=(0.8, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='mmtwins.SafeLoadImageFromFile', on_error='raise'),
    dict(type='Resize', scale=(128, 64), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
tta_pipeline = [
    dict(type='mmtwins.SafeLoadImageFromFile', on_error='raise'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale=(128, 64), keep_ratio=True)],
        [dict(type='Resize', scale_factor=ratio, keep_ratio=True) for ratio in (0.75, 1.25)],
        [dict(type='RandomFlip', prob=0., direction='horizontal'),
         dict(type='RandomFlip', prob=1., direction='horizontal')],
        [dict(type='LoadAnnotations', reduce_zero_label=True)],
        [dict(type='PackSegInputs')],
    ]),
]
train_dataloader = dict({loader}, dataset=dict(data_root={str(data_root)!r},
                                                    pipeline=train_pipeline))
val_dataloader = dict({loader}, dataset=dict(data_root={str(data_root)!r},
                                                  pipeline=test_pipeline))
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = [dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=0,
                        end={max_iters})]
train_cfg = dict(max_iters={max_iters}, val_interval={max_iters})
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval={max_iters}))
randomness = dict(seed=0)
"""
