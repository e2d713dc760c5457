"""list_models and get_model: names, aliases, weights of any format, clear errors."""
import pytest
import timm
import torch

import mmtwins
from mmtwins.apis import ModelZoo, get_model, list_models, model_zoo
from tests.helpers import REPO_ROOT, TINY_SVT


def test_list_models_patterns_and_tasks():
    names = list_models()
    assert len(names) == 9 + 15 + 36 and names == sorted(names)
    assert list_models('*SVT*', task='classification') == [
        'svt-b_8xb128_in1k', 'svt-l_16xb64_in1k', 'svt-s_8xb128_in1k']
    assert list_models('davit*', task='classification') == [
        'davit-b_4xb256_in1k', 'davit-s_4xb256_in1k', 'davit-t_4xb256_in1k']
    assert list_models('upernet_davit*', task='segmentation') == [
        'upernet_davit-b_8xb2-160k_ade20k-512x512', 'upernet_davit-s_8xb2-160k_ade20k-512x512',
        'upernet_davit-t_8xb2-160k_ade20k-512x512']
    assert list_models('fpn_*', task='classification') == []
    assert list_models('retinanet_davit-t*', task='detection') == [
        'retinanet_davit-t_fpn_ms-crop-1x_coco', 'retinanet_davit-t_fpn_ms-crop-3x_coco']


@pytest.mark.parametrize('alias, name', [
    ('twins-pcpvt-small_3rdparty_8xb128_in1k', 'pcpvt-s_8xb128_in1k'),
    ('twins-svt-base_8xb128_3rdparty_in1k', 'svt-b_8xb128_in1k'),
    ('TWINS_SVT_LARGE', 'svt-l_16xb64_in1k'),
    ('davit-tiny_3rdparty_in1k', 'davit-t_4xb256_in1k'),
    ('davit_base', 'davit-b_4xb256_in1k'),
])
def test_mmpretrain_and_timm_names_are_aliases(alias, name):
    assert ModelZoo.get(alias).name == name


def test_every_classifier_has_config_weights_and_results():
    for name in list_models(task='classification'):
        info = ModelZoo.get(name)
        assert info.config.startswith(str(REPO_ROOT / 'configs'))
        assert info.weights.startswith('https://') and info.weights.endswith('.pth')
        assert info.results[0]['Metrics']['Top 1 Accuracy'] > 80
        assert info.metadata['FLOPs'] > 1e9


def test_unknown_name_suggests_close_ones():
    with pytest.raises(ValueError, match="unknown model name 'davit_tinny'.*davit-t_4xb256_in1k"):
        get_model('davit_tinny')


def test_get_model_loads_official_weights_of_a_timm_model(tmp_path):
    reference = timm.create_model('twins_svt_small').eval()
    weights = tmp_path / 'alt_gvt_small.pth'
    torch.save(reference.state_dict(), weights)
    model = mmtwins.get_model('twins-svt-small_3rdparty_8xb128_in1k', pretrained=str(weights))
    assert not model.training
    images = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(model(images), reference(images), atol=1e-4)
    assert len(model._dataset_meta['classes']) == 1000


def test_get_model_from_a_config_file_with_overrides():
    model = get_model(str(REPO_ROOT / 'configs/twins/pcpvt-s_8xb128_in1k.py'),
                      backbone=dict(arch=dict(_delete_=True, **TINY_SVT),
                                    out_indices=(0, 1, 2, 3)),
                      neck=dict(in_channels=64), head=dict(in_channels=64))
    features = model.backbone(torch.rand(1, 3, 64, 64))
    assert [f.shape[1] for f in features] == list(TINY_SVT['embed_dims'])
    assert model._metainfo is None


def test_weights_that_fit_nothing_are_refused(tmp_path):
    weights = tmp_path / 'davit.pth'
    torch.save(timm.create_model('davit_tiny').state_dict(), weights)
    with pytest.raises(ValueError, match='Shapes differ|fit'):
        get_model('svt-s_8xb128_in1k', pretrained=str(weights))


def test_published_weights_without_network_say_what_to_do(monkeypatch):
    monkeypatch.setattr(model_zoo, '_can_download', lambda url: False)
    monkeypatch.setattr(model_zoo, '_downloaded_path', lambda url: '/nonexistent')
    with pytest.raises(ConnectionError, match=r"no network.*get_model\('davit-t_4xb256_in1k', "
                       r"pretrained='/path/to/davit-tiny_3rdparty_in1k_20221116-700fdf7d.pth'\)"):
        get_model('davit_tiny', pretrained=True)


def test_missing_weight_file_is_named():
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        get_model('svt-s_8xb128_in1k', pretrained='missing.pth')
