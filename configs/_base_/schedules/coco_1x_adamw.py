# The "1x PVT setting" of Twins on COCO, total batch 16: 12 epochs, AdamW lr 2e-4 (the Mask
# R-CNN value; RetinaNet configs set 1e-4), weight decay 1e-4 on every parameter, 500 linear
# warm-up iterations from 0.001 x lr, lr divided by 10 after epochs 8 and 11.
max_epochs = 12
# mmtwins' loop resumes a checkpoint saved within an epoch where it stopped (MMEngine's
# restarts the epoch).
train_cfg = dict(type='mmtwins.EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8, 11],
         gamma=0.1),
]

optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4))

# `tools/train.py --auto-scale-lr` scales lr linearly from this total batch.
auto_scale_lr = dict(enable=False, base_batch_size=16)
