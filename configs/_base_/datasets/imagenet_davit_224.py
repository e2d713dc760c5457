# The Twins ImageNet pipeline with DaViT's evaluation crop ratio 0.95 (short side 236 -> 224).
_base_ = ['./imagenet_twins_224.py']

test_pipeline = [
    dict(type='mmtwins.SafeLoadImageFromFile', on_error='raise'),
    dict(type='ResizeEdge', scale=236, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
