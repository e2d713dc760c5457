"""A whole mmseg segmentor file -> an mmtwins segmentor, decode heads included."""
import torch
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS as MMSEG_MODELS

from converter_helpers import (TWINS_ARCHS, _mm_twins_arch, image, randomize,
                               use_official_eps)
from mmtwins.converters import convert_to_mmtwins, load_into

DECODE_HEAD = dict(type='UPerHead', in_index=[0, 1, 2, 3], pool_scales=(1, 2),
                   channels=16, num_classes=3, align_corners=False)
AUXILIARY_HEAD = dict(type='FCNHead', in_index=2, channels=8, num_convs=1, num_classes=3,
                      concat_input=False, align_corners=False)


def build_segmentor(backbone: dict) -> torch.nn.Module:
    channels = TWINS_ARCHS['twins-pcpvt']['embed_dims']
    with DefaultScope.overwrite_default_scope('mmseg'):
        return MMSEG_MODELS.build(dict(
            type='EncoderDecoder', backbone=backbone,
            decode_head=dict(DECODE_HEAD, in_channels=channels),
            auxiliary_head=dict(AUXILIARY_HEAD, in_channels=channels[2])))


def test_mmseg_uperhead_model_loads_whole_into_mmtwins():
    mmseg_model = randomize(use_official_eps(build_segmentor(dict(
        type='PCPVT', **_mm_twins_arch('twins-pcpvt'), qkv_bias=True,
        norm_after_stage=False))))
    ours = build_segmentor(dict(type='mmtwins.TwinsPCPVT', arch=TWINS_ARCHS['twins-pcpvt'],
                                out_indices=(0, 1, 2, 3))).eval()

    state_dict, family, fmt = convert_to_mmtwins(mmseg_model.state_dict())
    assert (family, fmt) == ('twins-pcpvt', 'mmseg')
    report = load_into(ours, state_dict, prefix='')
    assert report.missing_keys == [] and report.unexpected_keys == []
    assert any(key.startswith('auxiliary_head.') for key in report.loaded_keys)

    inputs = image(batch=1, size=64)
    with torch.no_grad():
        expected = mmseg_model(inputs, mode='tensor')
        assert torch.allclose(ours(inputs, mode='tensor'), expected, atol=1e-4)


def test_decode_heads_keep_their_names():
    mmseg_model = build_segmentor(dict(type='PCPVT', **_mm_twins_arch('twins-pcpvt'),
                                       qkv_bias=True, norm_after_stage=False))
    state_dict, _, _ = convert_to_mmtwins(mmseg_model.state_dict())
    heads = {k for k in mmseg_model.state_dict() if not k.startswith('backbone.')}
    assert heads <= set(state_dict)
    assert torch.equal(state_dict['decode_head.conv_seg.weight'],
                       mmseg_model.state_dict()['decode_head.conv_seg.weight'])


