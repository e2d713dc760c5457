# The official UperNet schedule of Twins on ADE20K, total batch 16: AdamW lr 6e-5, betas
# (0.9, 0.999), weight decay 0.01 except on the backbone norms and the Twins position
# encodings (PEG); 1500 linear warm-up iterations from 1e-6 x lr (the official config's
# warmup_ratio=1e-6, a factor in mmcv 1.x), then poly (power 1) to 0 at 160k iterations.
# Validation every 16k iterations.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={
        'norm': dict(decay_mult=0.0),
        '.pos_enc.': dict(decay_mult=0.0),
    }))

max_iters = 160000
warmup_iters = 1500
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=warmup_iters,
         end=max_iters),
]

train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=16000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=16)
