# The multi-scale training resize of Swin's 3x setting (from DETR / Sparse R-CNN), which the
# Twins 3x and all DaViT detection configs train with: either a short side of 480 to 800
# (step 32, long side at most 1333), or a short side of 400 / 500 / 600, a random crop of
# 384 to 600 pixels a side, then the first choice.
multi_scale = [(480 + 32 * step, 1333) for step in range(11)]
ms_crop_resize = dict(
    type='RandomChoice',
    transforms=[
        [dict(type='RandomChoiceResize', scales=multi_scale, keep_ratio=True)],
        [
            dict(type='RandomChoiceResize', scales=[(400, 1333), (500, 1333), (600, 1333)],
                 keep_ratio=True),
            dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600),
                 allow_negative_crop=True),
            dict(type='RandomChoiceResize', scales=multi_scale, keep_ratio=True),
        ],
    ])
