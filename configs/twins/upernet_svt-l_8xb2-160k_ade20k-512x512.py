_base_ = ['./upernet_svt-s_8xb2-160k_ade20k-512x512.py']

model = dict(
    backbone=dict(
        arch='large',
        drop_path_rate=0.3,
        init_cfg=dict(
            checkpoint='https://download.openmmlab.com/mmclassification/v0/twins/'
            'twins-svt-large_3rdparty_16xb64_in1k_20220126-4817645f.pth')),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
