# RetinaNet with Twins-PCPVT-S on COCO, "1x PVT setting" (single scale 1333 x 800).
_base_ = [
    '../_base_/models/retinanet_twins_fpn.py', '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/coco_1x_adamw.py', '../_base_/detection_runtime.py'
]

optim_wrapper = dict(optimizer=dict(lr=1e-4))  # the RetinaNet lr of the 1x PVT setting
