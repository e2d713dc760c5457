# A DaViT ImageNet classifier as the official one computes it: the last stage map, the mean
# over tokens, then LayerNorm (eps 1e-5), then a linear head with label smoothing. DaViT-T.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='mmtwins.DaViT', arch='tiny', drop_path_rate=0.1),
    neck=dict(type='mmtwins.NormPoolNeck', in_channels=768, order='pool_norm', eps=1e-5),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=768,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.0)),
)
