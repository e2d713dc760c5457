_base_ = ['./mask-rcnn_pcpvt-s_fpn_ms-crop-3x_coco.py']

model = dict(
    backbone=dict(
        type='mmtwins.TwinsSVT',
        arch='large',
        # The official detection model: a LayerNorm after every stage, and windows over
        # maps not a multiple of 7 zero-padded without a key mask.
        norm_after_stage=True,
        window_padding='zero',
        init_cfg=dict(
            checkpoint='https://download.openmmlab.com/mmclassification/v0/twins/'
            'twins-svt-large_3rdparty_16xb64_in1k_20220126-4817645f.pth')),
    neck=dict(in_channels=[128, 256, 512, 1024]))
