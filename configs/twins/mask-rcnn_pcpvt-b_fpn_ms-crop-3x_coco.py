_base_ = ['./mask-rcnn_pcpvt-s_fpn_ms-crop-3x_coco.py']

model = dict(
    backbone=dict(
        arch='base',
        init_cfg=dict(
            checkpoint='https://download.openmmlab.com/mmclassification/v0/twins/'
            'twins-pcpvt-base_3rdparty_8xb128_in1k_20220126-f8c4b0d5.pth')),
    neck=dict(in_channels=[64, 128, 320, 512]))
