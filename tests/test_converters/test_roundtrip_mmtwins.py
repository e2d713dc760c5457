"""Source model -> file -> CLI -> mmtwins file -> mmtwins model: same outputs.

Every supported source format is written to disk the way its library saves it,
converted with ``tools/model_converters/convert.py`` and loaded into an mmtwins
model with :func:`mmtwins.converters.load_pretrained`; wherever the source
computes what the official model computes (Twins at 224 x 224, official and timm
DaViT), the mmtwins model must reproduce its outputs.
"""
import pytest
import torch
import torch.nn.functional as F
from converter_helpers import (image, load_convert_cli, mmpretrain_davit,
                               mmpretrain_twins, mmseg_twins, mmtwins_davit,
                               mmtwins_davit_classifier, mmtwins_twins,
                               mmtwins_twins_classifier,
                               official_davit_state_dict, timm_davit, timm_twins)
from timm.models.davit import checkpoint_filter_fn

from mmtwins.converters import load_pretrained, to_reference

TOLERANCE = 1e-4
FAMILIES = ('twins-pcpvt', 'twins-svt')
def convert_file(tmp_path, checkpoint, *options):
    """Saves ``checkpoint``, converts it with the CLI, returns the output path."""
    src, dst = tmp_path / 'source.pth', tmp_path / 'mmtwins.pth'
    torch.save(checkpoint, src)
    assert load_convert_cli().main([str(src), str(dst), *options]) == 0
    return str(dst)


def _assert_complete(report):
    assert report.missing_keys == [] and report.unexpected_keys == []
    assert report.dropped_keys == []


def _max_diff(first, second):
    return (first - second).abs().max().item()


def _assert_same_twins(target, x, logits, final_tokens):
    """Logits and, as pooled logits vary little between images, the normalised
    last-stage tokens ``(B, N, C)`` that the classifier pools."""
    with torch.no_grad():
        assert _max_diff(target(x, mode='tensor'), logits) < TOLERANCE
        last_map = target.backbone(x)[-1]
        ours = target.neck.norm(last_map.flatten(2).transpose(1, 2))
        assert _max_diff(ours, final_tokens) < TOLERANCE


@pytest.mark.parametrize('family', FAMILIES)
@pytest.mark.parametrize('fmt, wrapper', [('official', 'model'),
                                          ('timm', 'state_dict')])
def test_official_and_timm_classifier(tmp_path, family, fmt, wrapper):
    source = timm_twins(family)
    dst = convert_file(tmp_path, {wrapper: source.state_dict()}, '--format', fmt)

    target = mmtwins_twins_classifier(family)
    _assert_complete(load_pretrained(target, dst, prefix=''))
    x = image()
    with torch.no_grad():
        logits, final_tokens = source(x), source.forward_features(x)
    _assert_same_twins(target, x, logits, final_tokens)


@pytest.mark.parametrize('family', FAMILIES)
def test_mmpretrain_classifier(tmp_path, family):
    source = mmpretrain_twins(family)
    dst = convert_file(tmp_path, {'state_dict': source.state_dict(),
                                  'meta': {'epoch': 300}})

    target = mmtwins_twins_classifier(family)
    _assert_complete(load_pretrained(target, dst, prefix=''))
    x = image()
    with torch.no_grad():
        logits = source(x, mode='tensor')
        # mmpretrain's backbone applies the final norm (norm_after_stage3) itself.
        final_tokens = source.backbone(x)[-1].flatten(2).transpose(1, 2)
    _assert_same_twins(target, x, logits, final_tokens)


@pytest.mark.parametrize('family, norm_after_stage', [('twins-pcpvt', False),
                                                      ('twins-svt', True)])
def test_mmseg_segmentor_backbone(tmp_path, family, norm_after_stage):
    source = mmseg_twins(family, norm_after_stage=norm_after_stage)
    segmentor = {f'backbone.{k}': v for k, v in source.state_dict().items()}
    segmentor['decode_head.conv_seg.weight'] = torch.zeros(150, 64, 1, 1)
    dst = convert_file(tmp_path, {'state_dict': segmentor})

    target = mmtwins_twins(family, out_indices=(0, 1, 2, 3),
                           norm_after_stage=norm_after_stage)
    report = load_pretrained(target, dst, prefix='backbone.')
    assert report.missing_keys == [] and report.unexpected_keys == []
    assert report.dropped_keys == ['decode_head.conv_seg.weight']  # kept in the file
    x = image()
    with torch.no_grad():
        for ours, theirs in zip(target(x), source(x), strict=True):
            assert _max_diff(ours, theirs) < TOLERANCE


def test_classifier_initialises_a_dense_backbone(tmp_path):
    source = mmpretrain_twins('twins-svt')
    dst = convert_file(tmp_path, {'state_dict': source.state_dict()})

    target = mmtwins_twins('twins-svt', out_indices=(0, 1, 2, 3),
                           norm_after_stage=True)
    report = load_pretrained(target, dst, prefix='backbone.')
    assert report.missing_keys == [
        f'stages.{i}.norm.{p}' for i in range(4) for p in ('bias', 'weight')]
    assert report.unexpected_keys == []
    assert report.dropped_keys == ['head.fc.bias', 'head.fc.weight',
                                   'neck.norm.bias', 'neck.norm.weight']
    patch_embed = target.stages[0].patch_embed.proj.weight
    assert torch.equal(patch_embed,
                       source.backbone.patch_embeds[0].projection.weight)


def test_mmtwins_file_converts_to_itself(tmp_path):
    source = mmtwins_twins_classifier('twins-svt')
    dst = convert_file(tmp_path, {'state_dict': source.state_dict()})
    converted = torch.load(dst, weights_only=True)
    assert converted['meta'] == {'source_format': 'mmtwins', 'family': 'twins-svt'}
    assert list(converted['state_dict']) == list(source.state_dict())


def _assert_same_davit(target, timm_model, x):
    """Logits and, as pooled logits vary little between images, the last map too."""
    with torch.no_grad():
        assert _max_diff(target(x, mode='tensor'), timm_model(x)) < TOLERANCE
        last_map = target.backbone(x)[-1]
        assert _max_diff(last_map, timm_model.forward_features(x)) < TOLERANCE


def _timm_davit_from_official(official):
    """timm's DaViT loaded through timm's own official-key filter (the oracle)."""
    model = timm_davit()
    model.load_state_dict(checkpoint_filter_fn(dict(official), model), strict=True)
    return model


def test_official_davit_classifier(tmp_path):
    official = official_davit_state_dict()
    dst = convert_file(tmp_path, {'model': official})

    target = mmtwins_davit_classifier()
    _assert_complete(load_pretrained(target, dst, prefix=''))
    _assert_same_davit(target, _timm_davit_from_official(official), image())


def test_official_davit_dense_backbone(tmp_path):
    official = official_davit_state_dict(dense=True)
    dst = convert_file(tmp_path, official)

    target = mmtwins_davit(out_indices=(0, 1, 2, 3), norm_outputs=True)
    _assert_complete(load_pretrained(target, dst, prefix='backbone.'))
    trunk = timm_davit()
    trunk.load_state_dict(checkpoint_filter_fn(dict(official), trunk),
                          strict=False)
    x = image()
    with torch.no_grad():
        maps = trunk.forward_intermediates(x, intermediates_only=True)
        for stage, (ours, theirs) in enumerate(zip(target(x), maps, strict=True)):
            # Official dense models normalise every returned map per token.
            expected = F.layer_norm(theirs.permute(0, 2, 3, 1), theirs.shape[1:2],
                                    official[f'norm{stage}.weight'],
                                    official[f'norm{stage}.bias'])
            assert _max_diff(ours, expected.permute(0, 3, 1, 2)) < TOLERANCE


def test_timm_davit_classifier(tmp_path):
    source = timm_davit()
    dst = convert_file(tmp_path, {'state_dict': source.state_dict()})

    target = mmtwins_davit_classifier()
    _assert_complete(load_pretrained(target, dst, prefix=''))
    _assert_same_davit(target, source, image())


def test_mmpretrain_davit_classifier_loads_but_is_not_equivalent(tmp_path):
    source = mmpretrain_davit()
    with pytest.warns(UserWarning, match='not numerically'):
        dst = convert_file(tmp_path, {'state_dict': source.state_dict()})

    target = mmtwins_davit_classifier()
    _assert_complete(load_pretrained(target, dst, prefix=''))
    reference = timm_davit()
    with pytest.warns(UserWarning, match='not numerically'):
        converted = to_reference(source.state_dict(), 'davit', 'mmpretrain')
    reference.load_state_dict(converted, strict=True)
    x = image()
    # The same weights in the official computation...
    _assert_same_davit(target, reference, x)
    # ...which is not mmpretrain's (stem padding, norm before pooling).
    with torch.no_grad():
        assert _max_diff(target(x, mode='tensor'),
                         source(x, mode='tensor')) > 1e-2


def test_mmpretrain_davit_dense_backbone_loads_completely(tmp_path):
    source = mmpretrain_davit(out_indices=(0, 1, 2, 3))
    dst = convert_file(tmp_path, {'state_dict': source.state_dict()})

    target = mmtwins_davit(out_indices=(0, 1, 2, 3), norm_outputs=True)
    report = load_pretrained(target, dst, prefix='backbone.')
    assert report.missing_keys == [] and report.unexpected_keys == []
    # With per-stage norms the file is dense: the conversion keeps the backbone only.
    assert report.dropped_keys == []
    assert torch.equal(target.stages[3].out_norm.weight,
                       source.backbone.norm3.weight)
