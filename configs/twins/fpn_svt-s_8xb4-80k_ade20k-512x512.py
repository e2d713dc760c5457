_base_ = ['./fpn_pcpvt-s_8xb4-80k_ade20k-512x512.py']

model = dict(
    backbone=dict(
        type='mmtwins.TwinsSVT',
        arch='small',
        drop_path_rate=0.2,
        norm_after_stage=True,
        init_cfg=dict(
            checkpoint='https://download.openmmlab.com/mmclassification/v0/twins/'
            'twins-svt-small_3rdparty_8xb128_in1k_20220126-8fe5205b.pth')),
    neck=dict(in_channels=[64, 128, 256, 512]))
