"""init_cfg=Pretrained loads weights of any supported format, detected from the keys."""
import pytest
import timm
import torch
from mmengine.registry import DefaultScope

from mmtwins.converters import CheckpointError
from mmtwins.models.backbones import DaViT, TwinsSVT
from mmtwins.registry import MODELS

SMALL_SVT = dict(embed_dims=(32, 64, 64, 128), depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4),
                 mlp_ratios=(2, 2, 2, 2), sr_ratios=(8, 4, 2, 1))


@pytest.fixture(scope='module')
def official_svt(tmp_path_factory):
    """A timm Twins-SVT with random weights, saved in the official (== timm) format."""
    reference = timm.create_model('twins_svt_small', **{
        'embed_dims': SMALL_SVT['embed_dims'], 'depths': SMALL_SVT['depths'],
        'num_heads': SMALL_SVT['num_heads'], 'mlp_ratios': SMALL_SVT['mlp_ratios']}).eval()
    path = tmp_path_factory.mktemp('weights') / 'alt_gvt_tiny.pth'
    torch.save(reference.state_dict(), path)
    return reference, str(path)


def test_backbone_from_official_file_computes_timm_features(official_svt):
    reference, path = official_svt
    # 64 x 96 pads the windows: timm attends over zero padding.
    backbone = TwinsSVT(arch=SMALL_SVT, window_padding='zero',
                        init_cfg=dict(type='Pretrained', checkpoint=path))
    backbone.init_weights()
    images = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        last_map = backbone.eval()(images)[-1]
        ours = reference.norm(last_map.flatten(2).transpose(1, 2))
        assert torch.allclose(ours, reference.forward_features(images), atol=1e-5)


def test_dense_backbone_keeps_official_init_where_the_classifier_has_nothing(official_svt):
    _, path = official_svt
    backbone = TwinsSVT(arch=SMALL_SVT, out_indices=(0, 1, 2, 3), norm_after_stage=True,
                        init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.'))
    backbone.init_weights()
    for stage in backbone.stages:
        assert torch.equal(stage.norm.weight, torch.ones_like(stage.norm.weight))
        assert torch.equal(stage.norm.bias, torch.zeros_like(stage.norm.bias))
    loaded = torch.load(path, weights_only=True)['patch_embeds.0.proj.weight']
    assert torch.equal(backbone.stages[0].patch_embed.proj.weight, loaded)


def test_segmentor_init_weights_loads_the_backbone(official_svt):
    _, path = official_svt
    with DefaultScope.overwrite_default_scope('mmseg'):
        segmentor = MODELS.build(dict(
            _scope_='mmseg', type='EncoderDecoder',
            backbone=dict(type='mmtwins.TwinsSVT', arch=SMALL_SVT, out_indices=(0, 1, 2, 3),
                          norm_after_stage=True,
                          init_cfg=dict(type='Pretrained', checkpoint=path)),
            decode_head=dict(type='FPNHead', in_channels=list(SMALL_SVT['embed_dims']),
                             in_index=[0, 1, 2, 3], feature_strides=[4, 8, 16, 32],
                             channels=16, num_classes=3)))
    segmentor.init_weights()
    loaded = torch.load(path, weights_only=True)
    assert torch.equal(segmentor.backbone.stages[3].blocks[1].mlp.fc2.weight,
                       loaded['blocks.3.1.mlp.fc2.weight'])


def test_wrong_family_is_refused(official_svt):
    _, path = official_svt
    backbone = DaViT(arch=dict(embed_dims=(32, 64, 64, 128), depths=(1, 1, 1, 1),
                               num_heads=(1, 2, 2, 4)),
                     init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(ValueError):
        backbone.init_weights()


def test_a_prefix_that_selects_nothing_is_refused(official_svt):
    _, path = official_svt
    backbone = TwinsSVT(arch=SMALL_SVT, init_cfg=dict(type='Pretrained', checkpoint=path,
                                                      prefix='model.backbone.'))
    with pytest.raises(CheckpointError,
                       match=f"{path}: no weights under the prefix 'model.backbone.'"):
        backbone.init_weights()


@pytest.mark.parametrize('prefix, saved_under', [
    ('backbone', 'backbone.'),  # MMEngine's PretrainedInit adds the dot
    ('model.encoder.', 'model.encoder.'),
])
def test_prefix_selects_a_backbone_saved_under_it(official_svt, tmp_path, prefix, saved_under):
    reference, path = official_svt
    nested = tmp_path / 'nested.pth'
    torch.save({'state_dict': {saved_under + key: value
                               for key, value in reference.state_dict().items()
                               if not key.startswith('head.')}}, nested)
    backbone = TwinsSVT(arch=SMALL_SVT, init_cfg=dict(type='Pretrained', checkpoint=str(nested),
                                                      prefix=prefix))
    backbone.init_weights()
    assert torch.equal(backbone.stages[0].patch_embed.proj.weight,
                       reference.patch_embeds[0].proj.weight)


def test_other_initialisers_still_apply():
    backbone = TwinsSVT(arch=SMALL_SVT, init_cfg=dict(type='Constant', layer='Linear', val=0.5))
    backbone.init_weights()
    assert torch.all(backbone.stages[0].blocks[0].mlp.fc1.weight == 0.5)



@pytest.mark.parametrize('with_checkpoint, extra, message', [
    (True, dict(prefx='backbone.'), 'unknown: prefx'),  # was ignored: the whole file loaded
    (False, dict(prefix='backbone.'), 'needs checkpoint='),
])
def test_pretrained_options_are_checked(official_svt, with_checkpoint, extra, message):
    cfg = dict(type='Pretrained', **extra)
    if with_checkpoint:
        cfg['checkpoint'] = official_svt[1]
    with pytest.raises(ValueError, match=message):
        TwinsSVT(arch=SMALL_SVT, init_cfg=cfg).init_weights()


def test_pretrained_map_location_is_accepted(official_svt):
    backbone = TwinsSVT(arch=SMALL_SVT, init_cfg=dict(type='Pretrained', checkpoint=official_svt[1],
                                                      map_location='cpu'))
    backbone.init_weights()
    assert torch.equal(backbone.stages[0].patch_embed.proj.weight,
                       official_svt[0].patch_embeds[0].proj.weight)
