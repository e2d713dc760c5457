# DaViT in the UperNet recipe of Twins (the official DaViT UperNet config has the same
# optimiser, schedule, heads and drop path 0.3). Each returned map is LayerNorm-ed
# (`norm_outputs`); no decay on norms and the conv position encodings (the official config
# decays them).
_base_ = ['../twins/upernet_pcpvt-s_8xb2-160k_ade20k-512x512.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmtwins.DaViT',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        norm_outputs=True,
        window_padding='zero',  # as the official DaViT: no key mask
        drop_path_rate=0.3,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/davit/'
            'davit-tiny_3rdparty_in1k_20221116-700fdf7d.pth')),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={
            '_delete_': True,  # Twins' '.pos_enc.' names nothing in DaViT
            'norm': dict(decay_mult=0.0),
            '.cpe1.': dict(decay_mult=0.0),
            '.cpe2.': dict(decay_mult=0.0),
        }))
