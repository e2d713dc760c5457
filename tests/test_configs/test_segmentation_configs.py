"""The ADE20K segmentation configs: published parameter counts and the official recipes."""
import pytest
import timm
import torch

from mmtwins.apis import get_model, list_models
from mmtwins.models.layers import WindowAttention
from tests.helpers import REPO_ROOT, TINY_SVT
from tests.test_configs.helpers import (check_backbone_starts_from_imagenet_weights,
                                        check_no_decay_keys_name_parameters, load_zoo_model)

# Millions of parameters in the papers' tables (Twins, DaViT): UperNet only.
PUBLISHED_PARAMS = {
    'upernet_pcpvt-s': 54.6, 'upernet_pcpvt-b': 74.3, 'upernet_pcpvt-l': 91.5,
    'upernet_svt-s': 54.4, 'upernet_svt-b': 88.5, 'upernet_svt-l': 133,
    'upernet_davit-t': 60, 'upernet_davit-s': 81, 'upernet_davit-b': 121,
}
SEGMENTORS = list_models(task='segmentation')
UPERNETS = [name for name in SEGMENTORS if name.startswith('upernet_')]
FPNS = [name for name in SEGMENTORS if name.startswith('fpn_')]


def stage_channels(model: torch.nn.Module) -> list:
    return [stage.patch_embed.proj.out_channels for stage in model.backbone.stages]


@pytest.fixture(params=SEGMENTORS)
def zoo_model(request):
    return load_zoo_model(request.param)


def test_fifteen_released_segmentors():
    assert len(UPERNETS) == 9 and len(FPNS) == 6
    assert all(name.endswith('_ade20k-512x512') for name in SEGMENTORS)


def test_parameter_count_is_the_published_one(zoo_model):
    info, _, model = zoo_model
    count = sum(p.numel() for p in model.parameters())
    assert count == info.metadata['Parameters']
    published = PUBLISHED_PARAMS.get(info.name.split('_8xb')[0])
    if published is not None:
        assert count / 1e6 == pytest.approx(published, rel=0.01)


def test_every_no_decay_key_names_parameters(zoo_model):
    check_no_decay_keys_name_parameters(zoo_model.config, zoo_model.model)


def test_backbone_starts_from_the_published_imagenet_weights(zoo_model):
    check_backbone_starts_from_imagenet_weights(zoo_model.config)
    # The official DaViT pads windows without a key mask; SVT masks the padded keys as the
    # official Twins segmentation code means to (its mask misses one-sided padding).
    paddings = {module.window_padding for module in zoo_model.model.backbone.modules()
                if isinstance(module, WindowAttention)}
    expected = {'pcpvt': set(), 'svt': {'mask'}, 'davit': {'zero'}}
    assert paddings == expected[zoo_model.info.name.split('_')[1].split('-')[0]]


@pytest.mark.parametrize('name', UPERNETS)
def test_upernet_recipe(name):
    _, config, model = load_zoo_model(name)
    assert config.train_dataloader.batch_size * 8 == 16
    optimizer = config.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.weight_decay) == ('AdamW', 6e-5, 0.01)
    warmup, poly = config.param_scheduler
    # The official warmup_ratio=1e-6 is a factor of the lr in mmcv 1.x, not an lr.
    assert warmup.start_factor == 1e-6 and warmup.end == 1500
    assert (poly.type, poly.power, poly.eta_min, poly.end) == ('PolyLR', 1.0, 0.0, 160000)
    assert config.train_cfg.max_iters == 160000
    assert model.decode_head.in_channels == stage_channels(model)
    assert model.auxiliary_head.in_index == 2
    assert model.auxiliary_head.in_channels == stage_channels(model)[2]
    assert model.auxiliary_head.loss_decode.loss_weight == 0.4


@pytest.mark.parametrize('name', FPNS)
def test_fpn_recipe(name):
    _, config, model = load_zoo_model(name)
    assert config.train_dataloader.batch_size * 8 == 32
    optimizer = config.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.weight_decay) == ('AdamW', 1e-4, 1e-4)
    (poly, ) = config.param_scheduler
    assert (poly.type, poly.power, poly.eta_min, poly.end) == ('PolyLR', 0.9, 0.0, 80000)
    assert config.train_cfg.max_iters == 80000
    assert model.neck.in_channels == stage_channels(model)
    assert model.neck.out_channels == 256 and model.decode_head.channels == 128
    assert not model.with_auxiliary_head


def test_ade20k_data_and_test_time_scales(zoo_model):
    _, config, model = zoo_model
    assert config.train_dataloader.dataset.data_root == 'data/ade/ADEChallengeData2016'
    assert config.crop_size == (512, 512) and model.decode_head.num_classes == 150
    resizes = config.tta_pipeline[1].transforms[1]
    assert [resize.scale_factor for resize in resizes] == [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
    assert [flip.prob for flip in config.tta_pipeline[1].transforms[2]] == [0.0, 1.0]
    assert config.tta_model.type == 'SegTTAModel'


def test_backbone_init_cfg_loads_official_imagenet_weights(tmp_path):
    """``init_cfg`` takes an official (timm-format) Twins file: the backbone converts it."""
    official = timm.create_model(
        'twins_svt_small', embed_dims=TINY_SVT['embed_dims'], depths=TINY_SVT['depths'],
        num_heads=TINY_SVT['num_heads'], mlp_ratios=TINY_SVT['mlp_ratios'])
    torch.save(official.state_dict(), tmp_path / 'alt_gvt_tiny.pth')
    segmentor = get_model(
        str(REPO_ROOT / 'configs/twins/upernet_svt-s_8xb2-160k_ade20k-512x512.py'),
        backbone=dict(arch=dict(_delete_=True, **TINY_SVT),
                      init_cfg=dict(checkpoint=str(tmp_path / 'alt_gvt_tiny.pth'))),
        decode_head=dict(in_channels=list(TINY_SVT['embed_dims']), channels=16),
        auxiliary_head=dict(in_channels=TINY_SVT['embed_dims'][2], channels=16))
    segmentor.init_weights()
    stages = segmentor.backbone.stages
    for index, stage in enumerate(stages):
        torch.testing.assert_close(stage.patch_embed.proj.weight,
                                   official.patch_embeds[index].proj.weight)
        torch.testing.assert_close(stage.pos_enc.proj.weight,
                                   official.pos_block[index].proj[0].weight)
    torch.testing.assert_close(stages[2].blocks[1].attn.sr.weight,
                               official.blocks[2][1].attn.sr.weight)
