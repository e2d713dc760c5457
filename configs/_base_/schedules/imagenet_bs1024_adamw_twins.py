# The official Twins schedule for a total batch of 1024: AdamW, lr 5e-4 * 1024 / 512,
# weight decay 0.05 except on norms, biases and the position-encoding convs, gradient
# clipping at 5, 5 linear warm-up epochs from 1e-6, cosine to 1e-5, 300 epochs.
# --auto-scale-lr rescales lr to the actual total batch (linear scaling rule).
optim_wrapper = dict(
    optimizer=dict(
        type='AdamW', lr=5e-4 * 1024 / 512, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={'.pos_enc.': dict(decay_mult=0.0)}),
    clip_grad=dict(max_norm=5.0),
)

warmup_epochs = 5
max_epochs = 300
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-6 / (5e-4 * 1024 / 512),
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - warmup_epochs,
        eta_min=1e-5,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        convert_to_iter_based=True),
]

# mmtwins' loop resumes a checkpoint saved within an epoch where it stopped (MMEngine's
# restarts the epoch).
train_cfg = dict(type='mmtwins.EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=1024)
