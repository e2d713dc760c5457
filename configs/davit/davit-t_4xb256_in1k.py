_base_ = [
    '../_base_/models/davit_in1k.py', '../_base_/datasets/imagenet_davit_224.py',
    '../_base_/schedules/imagenet_bs1024_adamw_davit.py', '../_base_/default_runtime.py'
]

model = dict(
    backbone=dict(type='mmtwins.DaViT', arch='tiny', drop_path_rate=0.1),
    neck=dict(in_channels=768),
    head=dict(in_channels=768))
train_dataloader = dict(batch_size=256)
