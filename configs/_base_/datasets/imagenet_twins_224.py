# ImageNet-1k in the standard layout (docs/classification.md#prepare-imagenet) with the
# official Twins augmentation: RandomResizedCrop 224 (bicubic), flip, RandAugment m9 mstd0.5
# (increasing), RandomErasing 0.25, Mixup 0.8 / CutMix 1.0 (picked with equal probability);
# evaluation resizes the short side to 256 (bicubic) and crops the centre 224.
dataset_type = 'ImageNet'
data_root = 'data/imagenet'
data_preprocessor = dict(
    num_classes=1000,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True,
    batch_augments=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0),
    ]),
)
bgr_mean = data_preprocessor['mean'][::-1]
bgr_std = data_preprocessor['std'][::-1]

# An unreadable image ends evaluation with its name, and is skipped in training, at most
# max_skipped times per training process, over all its workers and epochs
# (docs/reliability.md).
train_pipeline = [
    dict(type='mmtwins.SafeLoadImageFromFile', on_error='skip', max_skipped=100),
    dict(type='RandomResizedCrop', scale=224, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='RandAugment',
        policies='timm_increasing',
        num_policies=2,
        total_level=10,
        magnitude_level=9,
        magnitude_std=0.5,
        hparams=dict(pad_val=[round(x) for x in bgr_mean], interpolation='bicubic')),
    dict(
        type='RandomErasing',
        erase_prob=0.25,
        mode='rand',
        min_area_ratio=0.02,
        max_area_ratio=1 / 3,
        fill_color=bgr_mean,
        fill_std=bgr_std),
    dict(type='PackInputs'),
]

test_pipeline = [
    dict(type='mmtwins.SafeLoadImageFromFile', on_error='raise'),
    dict(
        type='ResizeEdge',
        scale=256,
        edge='short',
        backend='pillow',
        interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=128,
    num_workers=8,
    # Workers restart every epoch, seeded from the checkpointed torch generator, so that a
    # resumed run augments exactly as the interrupted one (docs/reliability.md).
    persistent_workers=False,
    pin_memory=True,
    dataset=dict(
        type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    dataset=dict(type=dataset_type, data_root=data_root, split='val', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
