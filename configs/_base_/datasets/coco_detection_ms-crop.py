# COCO 2017 boxes with the multi-scale and random-crop training resize of Swin's 3x setting.
_base_ = ['./coco_detection.py', './coco_ms-crop_resize.py']

train_pipeline = [
    dict(type='mmtwins.SafeLoadImageFromFile', on_error='skip', max_skipped=100),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=0.5),
    {{_base_.ms_crop_resize}},
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
