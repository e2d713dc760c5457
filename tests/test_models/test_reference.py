"""The reference -> mmtwins key maps: fused q/kv, dense checkpoints, strictness."""
import pytest
import torch

from mmtwins.converters.reference import (davit_reference_to_mmtwins,
                                          twins_reference_to_mmtwins)
from tests.helpers import TINY_DAVIT, TINY_SVT

from .helpers import build_backbone


def test_twins_q_and_kv_fuse_into_qkv():
    q_weight, kv_weight = torch.randn(16, 16), torch.randn(32, 16)
    q_bias, kv_bias = torch.randn(16), torch.randn(32)
    out = twins_reference_to_mmtwins({
        'blocks.0.1.attn.q.weight': q_weight, 'blocks.0.1.attn.kv.weight': kv_weight,
        'blocks.0.1.attn.q.bias': q_bias, 'blocks.0.1.attn.kv.bias': kv_bias,
    })
    assert set(out) == {'backbone.stages.0.blocks.1.attn.qkv.weight',
                        'backbone.stages.0.blocks.1.attn.qkv.bias'}
    assert torch.equal(out['backbone.stages.0.blocks.1.attn.qkv.weight'],
                       torch.cat([q_weight, kv_weight]))
    assert torch.equal(out['backbone.stages.0.blocks.1.attn.qkv.bias'],
                       torch.cat([q_bias, kv_bias]))


def test_twins_classifier_and_dense_keys():
    tensor = torch.zeros(1)
    classifier = twins_reference_to_mmtwins({
        'pos_block.2.proj.0.weight': tensor, 'norm.bias': tensor, 'head.weight': tensor})
    assert set(classifier) == {'backbone.stages.2.pos_enc.proj.weight',
                               'neck.norm.bias', 'head.fc.weight'}
    dense = twins_reference_to_mmtwins({
        'norm_list.3.weight': tensor, 'norm.weight': tensor, 'head.weight': tensor,
        'patch_embeds.1.proj.bias': tensor})
    assert set(dense) == {'backbone.stages.3.norm.weight',
                          'backbone.stages.1.patch_embed.proj.bias'}


def test_twins_dense_state_dict_loads_into_a_dense_backbone():
    # Every key of a dense SVT is reachable: our own state dict, renamed by hand to
    # the reference naming, maps back onto it.
    model = build_backbone(type='TwinsSVT', arch=TINY_SVT, norm_after_stage=True)
    reference = {}
    for key, value in model.state_dict().items():
        key = (key.replace('stages.', 'blocks.', 1).replace('.blocks.', '.', 1)
               if '.blocks.' in key else key)
        for ours, theirs in (('stages.{}.patch_embed.', 'patch_embeds.{}.'),
                             ('stages.{}.pos_enc.proj.', 'pos_block.{}.proj.0.'),
                             ('stages.{}.norm.', 'norm_list.{}.')):
            for stage in range(4):
                key = key.replace(ours.format(stage), theirs.format(stage))
        reference[key] = value
    converted = twins_reference_to_mmtwins(reference)
    assert converted.keys() == {f'backbone.{k}' for k in model.state_dict()}
    for key, value in model.state_dict().items():
        assert torch.equal(converted[f'backbone.{key}'], value)


def test_twins_errors():
    with pytest.raises(ValueError, match='not in the Twins reference naming'):
        twins_reference_to_mmtwins({'blocks.0.0.attn.qkvw.weight': torch.zeros(1)})
    with pytest.raises(ValueError, match='has no matching'):
        twins_reference_to_mmtwins({'blocks.0.1.attn.q.weight': torch.zeros(1),
                                    'head.weight': torch.zeros(1)})


def test_davit_keys():
    tensor = torch.zeros(1)
    out = davit_reference_to_mmtwins({
        'stem.conv.weight': tensor, 'stages.1.downsample.norm.bias': tensor,
        'stages.2.blocks.1.0.cpe1.proj.weight': tensor,
        'stages.2.blocks.1.channel_block.attn.qkv.bias': tensor,
        'head.norm.weight': tensor, 'head.fc.weight': tensor})
    assert set(out) == {
        'backbone.stages.0.patch_embed.proj.weight',
        'backbone.stages.1.patch_embed.norm.bias',
        'backbone.stages.2.blocks.1.spatial.cpe1.proj.weight',
        'backbone.stages.2.blocks.1.channel.attn.qkv.bias',
        'neck.norm.weight', 'head.fc.weight'}
    dense = davit_reference_to_mmtwins({'norm2.weight': tensor, 'head.norm.weight': tensor,
                                        'head.fc.weight': tensor})
    assert set(dense) == {'backbone.stages.2.out_norm.weight'}
    with pytest.raises(ValueError, match='not in the DaViT reference naming'):
        davit_reference_to_mmtwins({'stages.0.blocks.0.2.norm1.weight': tensor})
    # timm's two spellings of one block: keeping either tensor would drop the other.
    with pytest.raises(ValueError, match=r"'stages\.0\.blocks\.0\.0\.norm1\.weight' and "
                                         r"'stages\.0\.blocks\.0\.spatial_block\.norm1\.weight' "
                                         r"both map to 'backbone\.stages\.0\.blocks\.0\.spatial"):
        davit_reference_to_mmtwins({'stages.0.blocks.0.0.norm1.weight': tensor,
                                    'stages.0.blocks.0.spatial_block.norm1.weight': tensor})


def test_davit_dense_state_dict_loads():
    model = build_backbone(type='DaViT', arch=TINY_DAVIT, out_indices=(0, 1, 2, 3),
                           norm_outputs=True)
    renamed = {}
    for key, value in model.state_dict().items():
        key = key.replace('stages.0.patch_embed.proj', 'stem.conv').replace(
            'stages.0.patch_embed.norm', 'stem.norm').replace(
            '.patch_embed.proj', '.downsample.conv').replace(
            '.patch_embed.norm', '.downsample.norm').replace(
            '.spatial.', '.0.').replace('.channel.', '.1.')
        for stage in range(4):
            key = key.replace(f'stages.{stage}.out_norm.', f'norm{stage}.')
        renamed[key] = value
    converted = davit_reference_to_mmtwins(renamed)
    assert converted.keys() == {f'backbone.{k}' for k in model.state_dict()}
