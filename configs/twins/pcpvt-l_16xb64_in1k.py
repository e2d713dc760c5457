_base_ = [
    '../_base_/models/twins_in1k.py', '../_base_/datasets/imagenet_twins_224.py',
    '../_base_/schedules/imagenet_bs1024_adamw_twins.py', '../_base_/default_runtime.py'
]

model = dict(
    backbone=dict(type='mmtwins.TwinsPCPVT', arch='large', drop_path_rate=0.3),
    neck=dict(in_channels=512),
    head=dict(in_channels=512))
train_dataloader = dict(batch_size=64)
