# The "3x Swin setting" of Twins on COCO, total batch 16: 36 epochs, AdamW lr 1e-4, betas
# (0.9, 0.999), weight decay 0.05 except on the backbone norms and the Twins position
# encodings (PEG); 500 linear warm-up iterations from 0.001 x lr, lr divided by 10 after
# epochs 27 and 33.
_base_ = ['./coco_1x_adamw.py']

max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 33],
         gamma=0.1),
]

optim_wrapper = dict(
    optimizer=dict(lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={
        'norm': dict(decay_mult=0.0),
        '.pos_enc.': dict(decay_mult=0.0),
    }))
