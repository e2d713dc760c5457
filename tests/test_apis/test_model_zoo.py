"""list_models and get_model: names, aliases, weights of any format, clear errors."""
import pytest
import timm
import torch
from mmengine.config import Config

import mmtwins
from mmtwins.apis import (ModelZoo, NoNetworkError, NoPublishedWeightsError, get_model,
                          list_models, model_zoo, task_of)
from mmtwins.converters import CheckpointError
from tests.helpers import REPO_ROOT, TINY_SVT

QUICKSTART = str(REPO_ROOT / 'configs/quickstart/twins-svt-tiny_1xb64_digits.py')


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


def test_list_models_patterns_match_aliases_as_get_model_does():
    svt_classifiers = ['svt-b_8xb128_in1k', 'svt-l_16xb64_in1k', 'svt-s_8xb128_in1k']
    assert list_models('twins_svt_*', task='classification') == svt_classifiers  # timm
    assert list_models('TWINS_SVT_SMALL') == ['svt-s_8xb128_in1k']
    # the mmseg names of the segmentors are aliases too; each model is listed once
    assert list_models('twins_svt*') == [
        *(f'fpn_svt-{size}_8xb4-80k_ade20k-512x512' for size in 'bls'), *svt_classifiers,
        *(f'upernet_svt-{size}_8xb2-160k_ade20k-512x512' for size in 'bls')]
    assert list_models('no_such_model*') == []


def test_list_models_patterns_match_the_start_of_names_as_mmpretrains():
    assert list_models('davit') == list_models('davit*') == [
        'davit-b_4xb256_in1k', 'davit-s_4xb256_in1k', 'davit-t_4xb256_in1k']
    assert list_models('svt-s_8xb128_in1k') == ['svt-s_8xb128_in1k']


def test_list_models_reads_each_config_once_per_process(monkeypatch):
    calls = []
    monkeypatch.setattr(model_zoo, 'task_of', lambda name: calls.append(name) or 'detection')
    model_zoo._zoo_task.cache_clear()
    try:
        assert len(list_models(task='detection')) == len(list_models(task='detection')) == 60
        assert sorted(calls) == list_models()  # took 10 s per call before
    finally:
        model_zoo._zoo_task.cache_clear()


def test_list_models_refuses_an_unknown_task():
    with pytest.raises(ValueError, match=r"unknown task 'classificaton'; expected one of "
                       r"\['classification', 'detection', 'segmentation'\]"):
        list_models(task='classificaton')


@pytest.mark.parametrize('model, task', [
    ('twins_svt_small', 'classification'),
    ('upernet_davit-t_8xb2-160k_ade20k-512x512', 'segmentation'),
    (str(REPO_ROOT / 'configs/davit/upernet_davit-t_8xb2-160k_ade20k-512x512.py'),
     'segmentation'),
    ('mask-rcnn_svt-s_fpn_1x_coco', 'detection'),
])
def test_task_of_zoo_names_and_config_files(model, task):
    assert task_of(model) == task


def test_task_of_an_mmtwins_scoped_config_is_its_models_scope():
    """docs/get_started.md: a config with ``default_scope='mmtwins'`` reaches the model of
    another library by ``_scope_`` or by a prefixed type."""
    config = Config.fromfile(QUICKSTART)
    config.default_scope = 'mmtwins'
    with pytest.raises(ValueError, match=r"twins-svt-tiny_1xb64_digits.py': its model "
                       r"\(type='ImageClassifier'\) resolves in scope 'mmtwins'"):
        task_of(config)
    config.model._scope_ = 'mmpretrain'
    assert task_of(config) == 'classification'
    config.model.type = 'mmseg.EncoderDecoder'  # the type's scope wins over _scope_
    assert task_of(config) == 'segmentation'


def test_get_model_explains_an_mmtwins_scoped_config_it_cannot_build():
    """docs/get_started.md: in an ``mmtwins``-scoped config an unprefixed model type, or a
    prefixed one without ``_scope_``, is a ValueError saying what to add (mmengine's
    KeyError named only the registry before)."""
    config = Config.fromfile(QUICKSTART)
    config.default_scope = 'mmtwins'
    with pytest.raises(ValueError, match=r"its model \(type='ImageClassifier'\) resolves in "
                       r"scope 'mmtwins'; prefix the type"):
        get_model(config)
    config.model.type = 'mmpretrain.ImageClassifier'
    with pytest.raises(ValueError, match=r"digits.py': ClsDataPreprocessor is not in the "
                       r"mmtwins::model registry: mmpretrain.ImageClassifier builds its "
                       r"nested parts .* add _scope_='mmpretrain' to the model dict$"):
        get_model(config)
    config.model._scope_ = 'mmpretrain'
    assert get_model(config).__class__.__name__ == 'ImageClassifier'


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


@pytest.mark.parametrize('change, message', [
    # Weights without the classifier head: scored with a random head before.
    (lambda weights: [weights.pop(k) for k in ('head.fc.weight', 'head.fc.bias')],
     r'cannot be used for inference .* 2 of its tensors would keep their random '
     r'initialisation:\n  head\.fc\.bias: not in the checkpoint'),
    # A deeper model of the same widths: its extra blocks were ignored.
    (lambda weights: weights.update({'backbone.stages.0.blocks.9.norm1.weight':
                                     weights['backbone.stages.0.blocks.0.norm1.weight']}),
     r'another architecture .*\n  backbone\.stages\.0\.blocks\.9\.norm1\.weight: not in '
     r'the model'),
])
def test_weights_that_leave_tensors_unset_or_do_not_belong_are_refused(tmp_path, change,
                                                                       message):
    weights = get_model(QUICKSTART).state_dict()
    change(weights)
    torch.save(weights, tmp_path / 'weights.pth')
    with pytest.raises(CheckpointError, match=message):
        get_model(QUICKSTART, pretrained=str(tmp_path / 'weights.pth'))


def test_a_data_preprocessor_override_keeps_the_configs_other_settings():
    # It replaced the config's preprocessor: no mean and std, no normalisation.
    model = get_model(QUICKSTART, data_preprocessor=dict(to_rgb=False))
    reference = get_model(QUICKSTART)
    assert not model.data_preprocessor.to_rgb and reference.data_preprocessor.to_rgb
    assert torch.equal(model.data_preprocessor.mean, reference.data_preprocessor.mean)
    assert torch.equal(model.data_preprocessor.std, reference.data_preprocessor.std)


def test_a_config_without_default_scope_builds_by_scoped_types(tmp_path):
    settings = Config.fromfile(QUICKSTART).to_dict()
    del settings['default_scope']
    settings['model']['type'] = 'mmpretrain.ImageClassifier'
    Config(settings).dump(tmp_path / 'no_scope.py')
    model = get_model(str(tmp_path / 'no_scope.py'))
    assert type(model).__name__ == 'ImageClassifier'


def test_published_weights_without_network_say_what_to_do(monkeypatch):
    monkeypatch.setattr(model_zoo, '_can_download', lambda url: False)
    monkeypatch.setattr(model_zoo, '_downloaded_path', lambda url: '/nonexistent')
    with pytest.raises(ConnectionError, match=r"no network.*get_model\('davit-t_4xb256_in1k', "
                       r"pretrained='/path/to/davit-tiny_3rdparty_in1k_20221116-700fdf7d.pth'\)"
                       ) as error:
        get_model('davit_tiny', pretrained=True)
    # what the demos rephrase as --checkpoint
    assert isinstance(error.value, NoNetworkError)
    assert error.value.name == 'davit-t_4xb256_in1k'
    assert error.value.url == ModelZoo.get('davit_tiny').weights


def test_a_config_has_no_published_weights():
    with pytest.raises(ValueError, match=r"^'.*twins-svt-tiny_1xb64_digits.py' has no "
                       r"published weights in the model zoo; pass pretrained=") as error:
        get_model(QUICKSTART, pretrained=True)
    assert isinstance(error.value, NoPublishedWeightsError)


def test_missing_weight_file_is_named():
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        get_model('svt-s_8xb128_in1k', pretrained='missing.pth')



def test_an_unregistered_test_dataset_warns_that_class_names_are_missing():
    config = Config.fromfile(str(REPO_ROOT / 'configs/twins/svt-s_8xb128_in1k.py'))
    config.test_dataloader.dataset.type = 'MyImageNet'  # its module never imported
    config.model.backbone.arch = TINY_SVT
    config.model.neck.in_channels = config.model.head.in_channels = 64
    with pytest.warns(UserWarning, match=r"type='mmpretrain.MyImageNet'.*no class names"):
        model = get_model(config)
    assert model._dataset_meta == {}
