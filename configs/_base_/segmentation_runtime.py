# Runtime of the segmentation configs: iteration-based runs in mmseg's scope (components
# without a prefix resolve in mmseg; mmtwins components are named with `mmtwins.`).
# Checkpoints every 16k iterations (the FPN configs: 8k), written atomically
# (docs/reliability.md). `tools/test.py --tta` wraps the model in `tta_model` and tests it on
# the dataset's `tta_pipeline`.
default_scope = 'mmseg'
custom_imports = dict(imports=['mmtwins.models'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='mmtwins.CheckpointHook', by_epoch=False, interval=16000, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'),
)

env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)

log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=None, deterministic=False)

tta_model = dict(type='SegTTAModel')
