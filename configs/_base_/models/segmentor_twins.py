# The encoder-decoder segmentor shared by the UperNet and Semantic FPN configs: a dense
# Twins backbone returning its four stage maps (strides 4 to 32), initialised from an
# ImageNet checkpoint. `init_cfg` takes a file or address in any format mmtwins converts
# (official, timm, mmpretrain, mmseg, mmtwins); the default is OpenMMLab's copy of the
# official weights (configs/twins/metafile.yml). This is Twins-PCPVT-S.
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    backbone=dict(
        type='mmtwins.TwinsPCPVT',
        arch='small',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.2,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/twins/'
            'twins-pcpvt-small_3rdparty_8xb128_in1k_20220126-ef23c132.pth')),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'),
)
