_base_ = ['./fpn_pcpvt-s_8xb4-80k_ade20k-512x512.py']

model = dict(
    backbone=dict(
        arch='large',
        drop_path_rate=0.2,
        init_cfg=dict(
            checkpoint='https://download.openmmlab.com/mmclassification/v0/twins/'
            'twins-pcpvt-large_3rdparty_16xb64_in1k_20220126-c1ef8d80.pth')))
