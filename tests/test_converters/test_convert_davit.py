"""DaViT checkpoints of the official code, timm and mmpretrain -> the reference.

The reference is timm's naming. For the official naming, timm's own
``checkpoint_filter_fn`` is the independent oracle. mmpretrain's DaViT differs
numerically in its stem padding and head norm placement, so its keys and shapes
are checked strictly and the four stages, which compute the same function, are
compared given the same stem output.
"""
import warnings

import pytest
import torch
from converter_helpers import (DAVIT_DIMS, mmpretrain_davit,
                               official_davit_state_dict, timm_davit)
from timm.models.davit import checkpoint_filter_fn

from mmtwins.converters import (MMPRETRAIN_NORM_CAVEAT, CheckpointError, convert_to_mmtwins,
                                detect_format, to_reference)


@pytest.mark.parametrize('dense', [False, True])
def test_official_keys_agree_with_timm_filter(dense):
    official = official_davit_state_dict(dense=dense)
    assert detect_format(official) == ('davit', 'official')
    target = timm_davit()

    reference = to_reference(official, 'davit', 'official')
    expected = checkpoint_filter_fn(dict(official), target)
    assert sorted(reference) == sorted(expected)
    assert all(reference[key] is value for key, value in expected.items())
    if dense:
        result = target.load_state_dict(reference, strict=False)
        assert sorted(result.missing_keys) == [
            'head.fc.bias', 'head.fc.weight', 'head.norm.bias', 'head.norm.weight']
        assert sorted(result.unexpected_keys) == sorted(
            f'norm{i}.{p}' for i in range(4) for p in ('weight', 'bias'))
    else:
        target.load_state_dict(reference, strict=True)


def test_timm_keys_pass_through():
    state_dict = timm_davit().state_dict()
    assert detect_format(state_dict) == ('davit', 'timm')
    reference = to_reference(state_dict, 'davit', 'timm')
    assert list(reference) == list(state_dict)
    assert all(reference[key] is value for key, value in state_dict.items())


def _stage_outputs_timm(model, x):
    outputs = []
    for stage in model.stages:
        x = stage(x)
        outputs.append(x)
    return outputs


def _stage_outputs_mmpretrain(backbone, x):
    batch, channels, height, width = x.shape
    tokens, hw_shape = x.flatten(2).transpose(1, 2), (height, width)
    outputs = []
    for stage in backbone.stages:
        tokens, hw_shape = stage(tokens, hw_shape, do_downsample=False)
        outputs.append(tokens.reshape(batch, *hw_shape, -1).permute(0, 3, 1, 2))
        if stage.downsample is not None:
            tokens, hw_shape = stage.downsample(tokens, hw_shape)
    return outputs


def test_mmpretrain_classifier_keys_and_stages_match_timm():
    source = mmpretrain_davit()
    state_dict = source.state_dict()
    with pytest.warns(UserWarning) as record:
        reference = to_reference(state_dict, 'davit', 'mmpretrain')
    assert MMPRETRAIN_NORM_CAVEAT in [str(w.message) for w in record]

    target = timm_davit()
    target.load_state_dict(reference, strict=True)
    # The downsample that ends mmpretrain's stage s starts timm's stage s + 1.
    assert reference['stages.1.downsample.conv.weight'] is \
        state_dict['backbone.stages.0.downsample.projection.weight']
    # The pre-pool per-token norm is carried over as the post-pool norm.
    assert reference['head.norm.weight'] is state_dict['backbone.norm3.weight']
    assert reference['head.fc.weight'] is state_dict['head.fc.weight']

    stem_output = torch.randn(2, DAVIT_DIMS[0], 56, 56,
                              generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = _stage_outputs_timm(target, stem_output)
        actual = _stage_outputs_mmpretrain(source.backbone, stem_output)
    for ours, theirs in zip(expected, actual):
        assert ours.shape == theirs.shape
        assert (ours - theirs).abs().max().item() < 1e-5


def test_mmpretrain_dense_norms_stay_per_stage():
    source = mmpretrain_davit(out_indices=(0, 1, 2, 3))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        reference = to_reference(source.backbone.state_dict(), 'davit',
                                 'mmpretrain')
    assert not any(key.startswith('head.') for key in reference)
    for i, dims in enumerate(DAVIT_DIMS):
        assert reference[f'norm{i}.weight'].shape == (dims, )
    result = timm_davit().load_state_dict(reference, strict=False)
    assert sorted(result.missing_keys) == [
        'head.fc.bias', 'head.fc.weight', 'head.norm.bias', 'head.norm.weight']
    assert len(result.unexpected_keys) == 8


def test_a_format_the_family_lacks_is_an_error():
    with pytest.raises(ValueError, match="No 'mmseg' format for davit"):
        to_reference(timm_davit().state_dict(), 'davit', 'mmseg')


def test_a_classifier_without_its_head_keeps_its_final_norm():
    """timm's num_classes=0 keeps ``head.norm`` and drops ``head.fc``."""
    headless = timm_davit(num_classes=0).state_dict()
    converted, _, _ = convert_to_mmtwins(headless)
    assert torch.equal(converted['neck.norm.weight'], headless['head.norm.weight'])
    assert not any(key.startswith('head.') for key in converted)


def test_keys_of_another_family_are_refused():
    with pytest.raises(CheckpointError, match='keys are those of a davit checkpoint in the '
                       'timm format, not of twins-svt'):
        to_reference(timm_davit().state_dict(), 'twins-svt', 'timm')
