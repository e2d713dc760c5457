# RetinaNet of mmdet on a Twins backbone: its FPN (256 channels, 5 levels) starts at stride 8
# and adds extra convolutions on the last backbone map. The backbone is that of
# mask-rcnn_twins_fpn.py (Twins-PCPVT-S from ImageNet weights, drop path 0.2).
_base_ = ['mmdet::_base_/models/retinanet_r50_fpn.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmtwins.TwinsPCPVT',
        arch='small',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.2,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/twins/'
            'twins-pcpvt-small_3rdparty_8xb128_in1k_20220126-ef23c132.pth')),
    neck=dict(in_channels=[64, 128, 320, 512]))
