# RetinaNet with DaViT-T on COCO, 1x (12 epochs) with the multi-scale and random-crop training
# of Swin's 3x setting, as the official DaViT detection configs train: AdamW lr 1e-4,
# weight decay 0.05 on every parameter, drop path 0.1. Each returned map is LayerNorm-ed.
_base_ = [
    '../_base_/models/retinanet_twins_fpn.py', '../_base_/datasets/coco_detection_ms-crop.py',
    '../_base_/schedules/coco_1x_adamw.py', '../_base_/detection_runtime.py'
]

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmtwins.DaViT',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        norm_outputs=True,
        window_padding='zero',  # as the official DaViT: no key mask
        drop_path_rate=0.1,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/davit/'
            'davit-tiny_3rdparty_in1k_20221116-700fdf7d.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))

optim_wrapper = dict(optimizer=dict(lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05))
