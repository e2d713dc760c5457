"""The COCO detection configs: backbone channels match the neck, published parameter counts,
the official recipes (1x PVT setting, 3x Swin setting, DaViT's) and the multi-scale pipeline."""
import functools
import re

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmtwins.apis import list_models
from mmtwins.models.layers import WindowAttention
from tests.test_configs.helpers import (check_backbone_starts_from_imagenet_weights,
                                        check_no_decay_keys_name_parameters, load_zoo_model)

DETECTORS = list_models(task='detection')
TWINS = [name for name in DETECTORS if '_davit-' not in name]
DAVIT = [name for name in DETECTORS if '_davit-' in name]
# Millions of parameters in the official DaViT detection release, to the 0.1 M it prints.
DAVIT_PUBLISHED_PARAMS = {
    'mask-rcnn_davit-t': 47.8, 'mask-rcnn_davit-s': 69.2, 'mask-rcnn_davit-b': 107.3,
    'retinanet_davit-t': 38.5, 'retinanet_davit-s': 59.9, 'retinanet_davit-b': 98.5,
}


@pytest.fixture(params=DETECTORS)
def zoo_model(request):
    return load_zoo_model(request.param)


def test_thirty_six_detectors():
    """Mask R-CNN and RetinaNet, 1x and 3x, for six Twins and three DaViT backbones."""
    assert len(TWINS) == 24 and len(DAVIT) == 12
    for name in DETECTORS:
        assert re.fullmatch(r'(mask-rcnn|retinanet)_(pcpvt|svt|davit)-[tsbl]_fpn_'
                            r'(1x|ms-crop-1x|ms-crop-3x)_coco', name), name


@functools.lru_cache(maxsize=None)
def backbone_output_shapes(backbone_cfg: str) -> list:
    """Shapes of the maps a real backbone (full size, on CPU) returns for a small image.

    Cached by the backbone's config text: the 1x and 3x, Mask R-CNN and RetinaNet configs of
    a backbone share it.
    """
    with DefaultScope.overwrite_default_scope('mmdet'):
        backbone = MODELS.build(eval(backbone_cfg)).eval()  # the repr of a plain dict
    with torch.no_grad():
        return [tuple(m.shape[1:]) for m in backbone(torch.rand(1, 3, 64, 96))]


def test_backbone_output_channels_match_the_neck(zoo_model):
    _, config, _ = zoo_model
    backbone_cfg = config.model.backbone.to_dict()
    backbone_cfg.pop('drop_path_rate')
    backbone_cfg['init_cfg'] = None
    shapes = backbone_output_shapes(repr(backbone_cfg))
    assert [shape[0] for shape in shapes] == list(config.model.neck.in_channels)
    assert [shape[1:] for shape in shapes] == [(64 // s, 96 // s) for s in (4, 8, 16, 32)]


def test_parameter_count_is_the_metafile_one(zoo_model):
    info, _, model = zoo_model
    count = sum(p.numel() for p in model.parameters())
    assert count == info.metadata['Parameters']
    published = DAVIT_PUBLISHED_PARAMS.get(info.name.split('_fpn')[0])
    if published is not None:
        assert int(count / 1e5) / 10 == published


def test_every_no_decay_key_names_parameters(zoo_model):
    check_no_decay_keys_name_parameters(zoo_model.config, zoo_model.model)


def test_backbone_starts_from_the_published_imagenet_weights(zoo_model):
    check_backbone_starts_from_imagenet_weights(zoo_model.config)
    # the official detection SVT and DaViT attend over zero-padded windows (no key mask);
    # PCPVT has no windows
    paddings = {module.window_padding for module in zoo_model.model.modules()
                if isinstance(module, WindowAttention)}
    assert paddings == (set() if '_pcpvt-' in zoo_model.info.name else {'zero'})


def test_coco_data_and_padding(zoo_model):
    _, config, model = zoo_model
    assert config.default_scope == 'mmdet'
    assert config.train_dataloader.dataset.data_root == 'data/coco/'
    assert config.train_dataloader.batch_size * 8 == 16
    assert model.data_preprocessor.pad_size_divisor == 32
    head = model.roi_head.bbox_head if 'mask-rcnn' in config.filename else model.bbox_head
    assert head.num_classes == 80
    metrics = config.val_evaluator.metric
    assert metrics == (['bbox', 'segm'] if 'mask-rcnn' in config.filename else 'bbox')
    assert config.default_hooks.checkpoint.type == 'mmtwins.CheckpointHook'


def _schedule(config: Config):
    warmup, steps = config.param_scheduler
    assert (warmup.type, warmup.start_factor, warmup.end) == ('LinearLR', 0.001, 500)
    assert not warmup.by_epoch and steps.type == 'MultiStepLR' and steps.gamma == 0.1
    optimizer = config.optim_wrapper.optimizer
    return (config.train_cfg.max_epochs, steps.milestones, optimizer.type, optimizer.lr,
            optimizer.weight_decay)


def _trains_multi_scale(config: Config) -> bool:
    return any(t.type == 'RandomChoice' for t in config.train_dataloader.dataset.pipeline)


@pytest.mark.parametrize('name', TWINS)
def test_twins_recipe(name):
    _, config, _ = load_zoo_model(name)
    assert config.model.backbone.drop_path_rate == 0.2
    if '_1x_' in name:  # the PVT setting: single scale, lr by detector, decay everywhere
        lr = 2e-4 if name.startswith('mask-rcnn') else 1e-4
        assert _schedule(config) == (12, [8, 11], 'AdamW', lr, 1e-4)
        assert 'paramwise_cfg' not in config.optim_wrapper
        assert not _trains_multi_scale(config)
    else:  # the Swin setting
        assert _schedule(config) == (36, [27, 33], 'AdamW', 1e-4, 0.05)
        assert set(config.optim_wrapper.paramwise_cfg.custom_keys) == {'norm', '.pos_enc.'}
        assert _trains_multi_scale(config)


@pytest.mark.parametrize('name', DAVIT)
def test_davit_recipe(name):
    _, config, _ = load_zoo_model(name)
    epochs, milestones, drop_path = ((12, [8, 11], 0.1) if '-1x_' in name else
                                     (36, [27, 33], 0.2))
    assert _schedule(config) == (epochs, milestones, 'AdamW', 1e-4, 0.05)
    assert not config.optim_wrapper.get('paramwise_cfg')
    assert config.model.backbone.drop_path_rate == drop_path
    assert _trains_multi_scale(config)


def test_retinanet_neck_starts_at_stride_8():
    _, config, model = load_zoo_model('retinanet_svt-s_fpn_1x_coco')
    assert (model.neck.start_level, model.neck.add_extra_convs) == (1, 'on_input')
    assert model.neck.num_outs == 5 and model.neck.out_channels == 256
