# Mask R-CNN with Twins-PCPVT-S on COCO, "1x PVT setting" (single scale 1333 x 800).
_base_ = [
    '../_base_/models/mask-rcnn_twins_fpn.py', '../_base_/datasets/coco_instance.py',
    '../_base_/schedules/coco_1x_adamw.py', '../_base_/detection_runtime.py'
]
