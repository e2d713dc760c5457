_base_ = ['./mask-rcnn_pcpvt-s_fpn_1x_coco.py']

model = dict(
    backbone=dict(
        type='mmtwins.TwinsSVT',
        arch='small',
        # The official detection model: a LayerNorm after every stage, and windows over
        # maps not a multiple of 7 zero-padded without a key mask.
        norm_after_stage=True,
        window_padding='zero',
        init_cfg=dict(
            checkpoint='https://download.openmmlab.com/mmclassification/v0/twins/'
            'twins-svt-small_3rdparty_8xb128_in1k_20220126-8fe5205b.pth')),
    neck=dict(in_channels=[64, 128, 256, 512]))
