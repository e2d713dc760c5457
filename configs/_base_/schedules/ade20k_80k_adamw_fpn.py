# The Semantic FPN schedule of PVT and Twins on ADE20K, total batch 32: AdamW lr 1e-4,
# weight decay 1e-4, poly (power 0.9) to 0 over 80k iterations. (mmseg's port keeps its
# `schedule_80k.py` floor of 1e-4, which holds this learning rate constant.)
# Validation every 8k iterations.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4))

max_iters = 80000
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, by_epoch=False, begin=0, end=max_iters),
]

train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=8000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=32)
