# Semantic FPN: an FPN neck (256 channels, 4 outputs) and the FPN head (128 channels) on
# the four backbone maps; 150 ADE20K classes. Twins-PCPVT-S.
_base_ = ['./segmentor_twins.py']

model = dict(
    neck=dict(type='FPN', in_channels=[64, 128, 320, 512], out_channels=256, num_outs=4),
    decode_head=dict(
        type='FPNHead',
        in_channels=[256, 256, 256, 256],
        in_index=[0, 1, 2, 3],
        feature_strides=[4, 8, 16, 32],
        channels=128,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg={{_base_.norm_cfg}},
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
)
