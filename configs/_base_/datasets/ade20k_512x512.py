# ADE20K (150 classes) under data/ade/ADEChallengeData2016 in its released layout
# (docs/segmentation.md#prepare-ade20k), as mmseg trains on it: random resize of the
# 2048 x 512 scale by 0.5 to 2.0, 512 x 512 crops (at most 75 % of one class), flip,
# photometric distortion. Single-scale testing resizes to 2048 x 512 (keeping the ratio);
# multi-scale testing (`--tta`) adds the official ratios 0.5 to 1.75 of that size, each
# also flipped. Unreadable training images are skipped with a warning (at most 100),
# unreadable test images stop the run naming the file.
dataset_type = 'ADE20KDataset'
data_root = 'data/ade/ADEChallengeData2016'
crop_size = (512, 512)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=crop_size)

train_pipeline = [
    dict(type='mmtwins.SafeLoadImageFromFile', on_error='skip', max_skipped=100),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='mmtwins.SafeLoadImageFromFile', on_error='raise'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    # after Resize: the metric compares with the label map at its original size
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
tta_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='mmtwins.SafeLoadImageFromFile', on_error='raise'),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale=(2048, 512), keep_ratio=True)],
            [dict(type='Resize', scale_factor=ratio, keep_ratio=True) for ratio in tta_ratios],
            [
                dict(type='RandomFlip', prob=0., direction='horizontal'),
                dict(type='RandomFlip', prob=1., direction='horizontal'),
            ],
            [dict(type='LoadAnnotations', reduce_zero_label=True)],
            [dict(type='PackSegInputs')],
        ]),
]

train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
