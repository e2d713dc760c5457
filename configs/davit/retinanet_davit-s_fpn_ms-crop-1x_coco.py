_base_ = ['./retinanet_davit-t_fpn_ms-crop-1x_coco.py']

model = dict(
    backbone=dict(
        arch='small',
        init_cfg=dict(
            checkpoint='https://download.openmmlab.com/mmclassification/v0/davit/'
            'davit-small_3rdparty_in1k_20221116-51a849a6.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
