_base_ = [
    '../_base_/models/upernet_twins.py', '../_base_/datasets/ade20k_512x512.py',
    '../_base_/schedules/ade20k_160k_adamw_upernet.py', '../_base_/segmentation_runtime.py'
]

train_dataloader = dict(batch_size=2)
