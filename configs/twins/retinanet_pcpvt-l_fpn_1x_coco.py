_base_ = ['./retinanet_pcpvt-s_fpn_1x_coco.py']

model = dict(
    backbone=dict(
        arch='large',
        init_cfg=dict(
            checkpoint='https://download.openmmlab.com/mmclassification/v0/twins/'
            'twins-pcpvt-large_3rdparty_16xb64_in1k_20220126-c1ef8d80.pth')),
    neck=dict(in_channels=[64, 128, 320, 512]))
