_base_ = [
    '../_base_/models/fpn_twins.py', '../_base_/datasets/ade20k_512x512.py',
    '../_base_/schedules/ade20k_80k_adamw_fpn.py', '../_base_/segmentation_runtime.py'
]

train_dataloader = dict(batch_size=4)
default_hooks = dict(checkpoint=dict(interval=8000))
