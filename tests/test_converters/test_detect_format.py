"""Family and format from the keys alone, on state dicts of the real libraries."""
import pytest
import torch
from converter_helpers import (mmpretrain_davit, mmpretrain_twins, mmseg_twins,
                               mmtwins_davit, mmtwins_davit_classifier,
                               mmtwins_twins, mmtwins_twins_classifier,
                               official_davit_state_dict, timm_davit, timm_twins)

from mmtwins.converters import FORMATS, detect_format


def _mmseg_segmentor(family):
    """A whole mmseg model: backbone under ``backbone.``, plus decode heads."""
    backbone = mmseg_twins(family, norm_after_stage=True).state_dict()
    state_dict = {f'backbone.{key}': value for key, value in backbone.items()}
    state_dict['decode_head.conv_seg.weight'] = torch.zeros(150, 512, 1, 1)
    state_dict['auxiliary_head.conv_seg.bias'] = torch.zeros(150)
    return state_dict


TWINS = ('twins-pcpvt', 'twins-svt')
CASES = [
    *[pytest.param(lambda f=f: timm_twins(f).state_dict(), f, 'official',
                   id=f'{f}-timm-model') for f in TWINS],
    *[pytest.param(lambda f=f: mmpretrain_twins(f).state_dict(), f, 'mmpretrain',
                   id=f'{f}-mmpretrain-classifier') for f in TWINS],
    *[pytest.param(lambda f=f: mmpretrain_twins(f).backbone.state_dict(), f,
                   'mmpretrain', id=f'{f}-mmpretrain-backbone') for f in TWINS],
    *[pytest.param(lambda f=f: mmseg_twins(f, norm_after_stage=False).state_dict(),
                   f, 'mmseg', id=f'{f}-mmseg-backbone') for f in TWINS],
    *[pytest.param(lambda f=f: _mmseg_segmentor(f), f, 'mmseg',
                   id=f'{f}-mmseg-segmentor') for f in TWINS],
    *[pytest.param(lambda f=f: mmtwins_twins(f).state_dict(), f, 'mmtwins',
                   id=f'{f}-mmtwins-backbone') for f in TWINS],
    *[pytest.param(lambda f=f: mmtwins_twins_classifier(f).state_dict(), f,
                   'mmtwins', id=f'{f}-mmtwins-classifier') for f in TWINS],
    pytest.param(official_davit_state_dict, 'davit', 'official',
                 id='davit-official-classifier'),
    pytest.param(lambda: official_davit_state_dict(dense=True), 'davit',
                 'official', id='davit-official-dense'),
    pytest.param(lambda: timm_davit().state_dict(), 'davit', 'timm',
                 id='davit-timm'),
    pytest.param(lambda: mmpretrain_davit().state_dict(), 'davit', 'mmpretrain',
                 id='davit-mmpretrain-classifier'),
    pytest.param(lambda: mmpretrain_davit((0, 1, 2, 3)).backbone.state_dict(),
                 'davit', 'mmpretrain', id='davit-mmpretrain-dense-backbone'),
    pytest.param(lambda: mmtwins_davit().state_dict(), 'davit', 'mmtwins',
                 id='davit-mmtwins-backbone'),
    pytest.param(lambda: mmtwins_davit_classifier().state_dict(), 'davit',
                 'mmtwins', id='davit-mmtwins-classifier'),
]


@pytest.mark.parametrize('make, family, fmt', CASES)
def test_detects_family_and_format(make, family, fmt):
    assert detect_format(make()) == (family, fmt)


@pytest.mark.parametrize('make, family, fmt', CASES)
def test_other_formats_do_not_match(make, family, fmt):
    state_dict = make()
    # Official and timm Twins share their keys, so each accepts the other.
    twins_aliases = {'official', 'timm'} if fmt == 'official' else {fmt}
    others = [other for other in FORMATS if other not in twins_aliases]
    with pytest.raises(ValueError, match='not a Twins'):
        detect_format(state_dict, formats=others)


def test_timm_twins_detected_as_timm_when_asked():
    state_dict = timm_twins('twins-svt').state_dict()
    assert detect_format(state_dict, formats=['timm']) == ('twins-svt', 'timm')


def test_unknown_checkpoint_error_names_source_and_keys():
    resnet = {'conv1.weight': torch.zeros(1), 'layer1.0.conv1.weight': torch.zeros(1)}
    with pytest.raises(ValueError) as error:
        detect_format(resnet, source='/data/resnet50.pth')
    message = str(error.value)
    assert '/data/resnet50.pth' in message
    assert 'conv1.weight' in message and 'layer1.0.conv1.weight' in message


def test_unknown_format_name_is_an_error():
    with pytest.raises(ValueError, match='Unknown checkpoint formats'):
        detect_format(timm_davit().state_dict(), formats=['caffe'])
