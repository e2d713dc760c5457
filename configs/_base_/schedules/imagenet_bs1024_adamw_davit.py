# The DaViT schedule for a total batch of 1024: the Twins recipe (AdamW lr 1e-3, weight
# decay 0.05 except on norms, biases and the conv position encodings, clipping at 5, cosine
# to 1e-5, 300 epochs) with 20 linear warm-up epochs from 1e-6.
_base_ = ['./imagenet_bs1024_adamw_twins.py']

optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={
            '_delete_': True,  # Twins' '.pos_enc.' names nothing in DaViT
            '.cpe1.': dict(decay_mult=0.0),
            '.cpe2.': dict(decay_mult=0.0),
        }))

warmup_epochs = 20
max_epochs = 300
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-6 / 1e-3,
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
