# RetinaNet with Twins-PCPVT-S on COCO, "3x Swin setting" (multi-scale and random-crop
# training).
_base_ = [
    '../_base_/models/retinanet_twins_fpn.py', '../_base_/datasets/coco_detection_ms-crop.py',
    '../_base_/schedules/coco_3x_adamw.py', '../_base_/detection_runtime.py'
]
