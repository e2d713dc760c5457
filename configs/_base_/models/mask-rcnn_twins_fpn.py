# Mask R-CNN with FPN (256 channels, 5 levels) of mmdet on the four maps of a Twins backbone
# (strides 4 to 32), initialised from an ImageNet checkpoint. `init_cfg` takes a file or
# address in any format mmtwins converts (official, timm, mmpretrain, mmseg, mmtwins); the
# default is OpenMMLab's copy of the official weights. This is Twins-PCPVT-S, with the
# official detection drop path 0.2.
_base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py']

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
