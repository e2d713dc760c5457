"""Tiny configs of the three tasks, for counting parameters and FLOPs quickly."""
import os.path as osp
from pathlib import Path
from typing import Dict

from tests.helpers import REPO_ROOT, TINY_PCPVT, TINY_SVT

TINY_CHANNELS = list(TINY_SVT['embed_dims'])

# Each inherits a real config (the detector: mmdet's own Mask R-CNN, as a user of mmdet
# writes it), with a tiny backbone and heads.
TINY_CONFIGS = {
    'classification': f"""
_base_ = [{osp.join(str(REPO_ROOT), 'configs/twins/svt-s_8xb128_in1k.py')!r}]
model = dict(
    backbone=dict(arch=dict(_delete_=True, **{TINY_SVT!r})),
    neck=dict(in_channels=64),
    head=dict(num_classes=10, in_channels=64))
""",
    'segmentation': f"""
_base_ = [{osp.join(str(REPO_ROOT),
                    'configs/twins/upernet_pcpvt-s_8xb2-160k_ade20k-512x512.py')!r}]
model = dict(
    backbone=dict(arch=dict(_delete_=True, **{TINY_PCPVT!r}), init_cfg=None),
    decode_head=dict(in_channels={TINY_CHANNELS}, channels=32),
    auxiliary_head=dict(in_channels=48, channels=16))
""",
    'detection': f"""
_base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py']
default_scope = 'mmdet'
custom_imports = dict(imports=['mmtwins.models'], allow_failed_imports=False)
model = dict(
    backbone=dict(_delete_=True, type='mmtwins.TwinsSVT', arch={TINY_SVT!r},
                  out_indices=(0, 1, 2, 3)),
    neck=dict(in_channels={TINY_CHANNELS}, out_channels=32),
    rpn_head=dict(in_channels=32, feat_channels=32),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=32),
        bbox_head=dict(in_channels=32, fc_out_channels=64),
        mask_roi_extractor=dict(out_channels=32),
        mask_head=dict(in_channels=32, conv_out_channels=32)))
""",
}


def write_tiny_configs(folder: Path) -> Dict[str, Path]:
    """Writes ``tiny_<task>.py`` for each task into ``folder``; returns task -> path."""
    paths = {}
    for task, text in TINY_CONFIGS.items():
        paths[task] = folder / f'tiny_{task}.py'
        paths[task].write_text(text)
    return paths
