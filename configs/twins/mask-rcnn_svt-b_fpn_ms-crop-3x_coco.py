_base_ = ['./mask-rcnn_pcpvt-s_fpn_ms-crop-3x_coco.py']

model = dict(
    backbone=dict(
        type='mmtwins.TwinsSVT',
        arch='base',
        # The official detection model: a LayerNorm after every stage, and windows over
        # maps not a multiple of 7 zero-padded without a key mask.
        norm_after_stage=True,
        window_padding='zero',
        init_cfg=dict(
            checkpoint='https://download.openmmlab.com/mmclassification/v0/twins/'
            'twins-svt-base_3rdparty_8xb128_in1k_20220126-e31cc8e9.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
