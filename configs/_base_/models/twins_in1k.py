# A Twins ImageNet classifier as the official one computes it: the last stage map, LayerNorm
# (eps 1e-6) on every token, then the mean over tokens, then a linear head with label
# smoothing. Configs choose the backbone type and arch; this is Twins-SVT-S.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='mmtwins.TwinsSVT', arch='small', drop_path_rate=0.2),
    neck=dict(type='mmtwins.NormPoolNeck', in_channels=512, order='norm_pool', eps=1e-6),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=512,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.0)),
)
