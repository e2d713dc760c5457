# The quickstart (demo/quickstart.py): a tiny Twins-SVT trained from scratch on the 1,797
# handwritten 8x8 digits of scikit-learn, written as 32x32 PNGs under data/digits/{train,val,
# test}/<class>/ by the demo. 30 epochs take 1.5-2 minutes on 2 CPU cores and reach 98-100%
# top-1 on the 270 test images (docs/quickstart.md).
_base_ = [
    '../_base_/models/twins_in1k.py', '../_base_/schedules/imagenet_bs1024_adamw_twins.py',
    '../_base_/default_runtime.py'
]

# Three stages on a 32x32 input: 8x8, 4x4 and 2x2 token maps (0.60 M parameters). The
# windows of 4 split the first map into four local groups; on the smaller maps one window
# covers the whole map.
model = dict(
    backbone=dict(
        _delete_=True,  # replaces Twins-SVT-S of the base
        type='mmtwins.TwinsSVT',
        arch=dict(
            embed_dims=(32, 64, 128),
            depths=(2, 2, 2),
            num_heads=(1, 2, 4),
            mlp_ratios=(4, 4, 4),
            sr_ratios=(4, 2, 1)),
        window_size=4,
        drop_path_rate=0.1),
    neck=dict(in_channels=128),
    head=dict(num_classes=10, in_channels=128))

# Mean and standard deviation of the 1,797 digits as 32x32 PNGs (grey: equal in every
# channel). No Mixup/CutMix: the run reaches 98-100% without them.
data_preprocessor = dict(
    num_classes=10, mean=[78.9] * 3, std=[88.9] * 3, to_rgb=True)

image_size = 32
dataset_type = 'CustomDataset'
data_root = 'data/digits'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    # Shifts of up to one original pixel (4 of 32); no flips, which would change the digit.
    dict(type='RandomCrop', crop_size=image_size, padding=4, pad_val=0),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    # A no-op on the digits; brings an image of any other size to the trained scale, and a
    # batch of such images to one size.
    dict(type='Resize', scale=image_size),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=64,
    num_workers=0,  # loading a batch takes ~0.02 s of a ~0.13 s iteration
    dataset=dict(
        type=dataset_type, data_root=data_root, data_prefix='train', pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=256,
    num_workers=0,
    dataset=dict(
        type=dataset_type, data_root=data_root, data_prefix='val', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = dict(
    batch_size=256,
    num_workers=0,
    dataset=dict(
        type=dataset_type, data_root=data_root, data_prefix='test', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_evaluator = val_evaluator

# AdamW at 1e-3 for a batch of 64 with the Twins weight decay rules of the base schedule.
# The warm-up overlaps the cosine (both scale the learning rate), so the cosine alone
# fixes the length: demo/quickstart.py --epochs rewrites param_scheduler[1]'s T_max and end.
max_epochs = 30
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=1e-5, by_epoch=True, begin=0,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=1)
auto_scale_lr = dict(base_batch_size=64)

default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=-1, save_last=True))  # only the last epoch
randomness = dict(seed=0)
