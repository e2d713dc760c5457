"""Twins checkpoints of mmpretrain, mmseg and timm -> the reference naming.

timm's Twins has the official keys, so a reference state dict must load into it
strictly; with the same weights the OpenMMLab ports compute the same function at
224 x 224, so outputs must agree to float precision.
"""
import pytest
import torch
from converter_helpers import (TWINS_ARCHS, image, mmpretrain_twins,
                               mmseg_twins, timm_twins)

from mmtwins.converters import convert_to_mmtwins, detect_format, to_reference

FAMILIES = ('twins-pcpvt', 'twins-svt')


@pytest.mark.parametrize('family', FAMILIES)
def test_mmpretrain_classifier_gives_timm_logits(family):
    source = mmpretrain_twins(family)
    reference = to_reference(source.state_dict(), family, 'mmpretrain')

    target = timm_twins(family)
    target.load_state_dict(reference, strict=True)
    x = image()
    with torch.no_grad():
        logits_diff = (target(x) - source(x, mode='tensor')).abs().max().item()
        # Pooled logits vary little between images; the tokens they pool do.
        final_tokens = source.backbone(x)[-1].flatten(2).transpose(1, 2)
        tokens_diff = (target.forward_features(x) - final_tokens).abs().max().item()
    assert logits_diff < 1e-5 and tokens_diff < 1e-5


@pytest.mark.parametrize('family', FAMILIES)
def test_mmpretrain_dense_norms_become_norm_list(family):
    source = mmpretrain_twins(family, norm_after_stage=(True, ) * 4)
    reference = to_reference(source.state_dict(), family, 'mmpretrain')

    assert not any(key.startswith('norm.') for key in reference)
    for stage in range(4):
        for param in ('weight', 'bias'):
            assert torch.equal(
                reference[f'norm_list.{stage}.{param}'],
                source.state_dict()[f'backbone.norm_after_stage{stage}.{param}'])


@pytest.mark.parametrize('family', FAMILIES)
def test_mmseg_backbone_gives_timm_features(family):
    source = mmseg_twins(family, norm_after_stage=False)
    reference = to_reference(source.state_dict(), family, 'mmseg')

    target = timm_twins(family)
    result = target.load_state_dict(reference, strict=False)
    assert sorted(result.missing_keys) == [
        'head.bias', 'head.weight', 'norm.bias', 'norm.weight']
    assert result.unexpected_keys == []
    x = image()
    with torch.no_grad():
        expected = target.forward_intermediates(x, intermediates_only=True)
        actual = source(x)
    assert len(actual) == 4
    for ours, theirs in zip(expected, actual):
        assert (ours - theirs).abs().max().item() < 1e-5


@pytest.mark.parametrize('family', FAMILIES)
def test_mmseg_multihead_attention_splits_into_q_and_kv(family):
    source = mmseg_twins(family, norm_after_stage=True).state_dict()
    reference = to_reference(source, family, 'mmseg')

    in_proj = {key: value for key, value in source.items() if 'in_proj' in key}
    assert in_proj, 'the tiny arch must have GSA blocks'
    for key, value in in_proj.items():
        block = key.replace('layers.', 'blocks.', 1).split('.attn.attn.')[0]
        param = key.rsplit('_', 1)[1]
        q = reference[f'{block}.attn.q.{param}']
        kv = reference[f'{block}.attn.kv.{param}']
        assert q.shape[0] * 2 == kv.shape[0]
        assert torch.equal(torch.cat([q, kv]), value)
    for stage, dims in enumerate(TWINS_ARCHS[family]['embed_dims']):
        assert torch.equal(reference[f'norm_list.{stage}.weight'],
                           source[f'norm_list.{stage}.weight'])
        assert reference[f'norm_list.{stage}.weight'].shape == (dims, )
    assert not any('attn.attn' in key for key in reference)


@pytest.mark.parametrize('family', FAMILIES)
@pytest.mark.parametrize('fmt', ['official', 'timm'])
def test_official_and_timm_keys_pass_through(family, fmt):
    state_dict = timm_twins(family).state_dict()
    # Official dense checkpoints add per-stage norms; they are reference keys too.
    state_dict.update({f'norm_list.{i}.weight': torch.rand(d)
                       for i, d in enumerate(TWINS_ARCHS[family]['embed_dims'])})
    assert detect_format(state_dict, formats=[fmt]) == (family, fmt)

    reference = to_reference(state_dict, family, fmt)
    assert list(reference) == list(state_dict)
    assert all(reference[key] is value for key, value in state_dict.items())


@pytest.mark.parametrize('family', FAMILIES)
def test_a_classifier_without_its_head_keeps_its_final_norm(family):
    """timm's num_classes=0, the usual start of a fine-tuning on other classes."""
    headless = timm_twins(family, num_classes=0).state_dict()
    converted, _, _ = convert_to_mmtwins(headless)
    assert torch.equal(converted['neck.norm.weight'], headless['norm.weight'])
    assert not any(key.startswith('head.') for key in converted)
