_base_ = ['./retinanet_davit-t_fpn_ms-crop-1x_coco.py']

model = dict(
    backbone=dict(
        arch='base',
        init_cfg=dict(
            checkpoint='https://download.openmmlab.com/mmclassification/v0/davit/'
            'davit-base_3rdparty_in1k_20221116-19e0d956.pth')),
    neck=dict(in_channels=[128, 256, 512, 1024]))
