"""The mmtwins registry scope: reached from the libraries' configs, and reaching theirs."""
import subprocess
import sys
import textwrap

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.visualization import Visualizer

from mmtwins.registry import DATASETS, HOOKS, METRICS, MODELS, TRANSFORMS
from tests.helpers import TINY_DAVIT, TINY_PCPVT, TINY_SVT

TINY_CHANNELS = list(TINY_SVT['embed_dims'])

# Configs as a user of each library writes them: the library's own base config, one of our
# backbones swapped in by name, mmtwins imported through custom_imports.
LIBRARY_CONFIGS = {
    'mmpretrain': f"""
        _base_ = ['mmpretrain::_base_/models/resnet18.py']
        default_scope = 'mmpretrain'
        custom_imports = dict(imports=['mmtwins.models'], allow_failed_imports=False)
        model = dict(
            backbone=dict(_delete_=True, type='mmtwins.TwinsSVT', arch={TINY_SVT}),
            neck=dict(_delete_=True, type='mmtwins.NormPoolNeck', in_channels=64),
            head=dict(num_classes=10, in_channels=64))
        """,
    'mmseg': f"""
        _base_ = ['mmseg::_base_/models/upernet_r50.py']
        default_scope = 'mmseg'
        custom_imports = dict(imports=['mmtwins.models'], allow_failed_imports=False)
        model = dict(
            pretrained=None,  # mmseg hands this to the backbone; ours take init_cfg
            backbone=dict(_delete_=True, type='mmtwins.TwinsPCPVT', arch={TINY_PCPVT},
                          out_indices=(0, 1, 2, 3)),
            decode_head=dict(in_channels={TINY_CHANNELS}, channels=32, num_classes=5),
            auxiliary_head=dict(in_channels=48, channels=16, num_classes=5))
        """,
    'mmdet': f"""
        _base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py']
        default_scope = 'mmdet'
        custom_imports = dict(imports=['mmtwins.models'], allow_failed_imports=False)
        model = dict(
            backbone=dict(_delete_=True, type='mmtwins.TwinsSVT', arch={TINY_SVT},
                          out_indices=(0, 1, 2, 3)),
            neck=dict(in_channels={TINY_CHANNELS}))
        """,
}

# Run in a fresh interpreter, so that only the config's custom_imports brings mmtwins in.
BUILD_SCRIPT = """
import sys, torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
cfg = Config.fromfile(sys.argv[1])
init_default_scope(cfg.default_scope)
registry = __import__(cfg.default_scope + '.registry', fromlist=['MODELS']).MODELS
model = registry.build(cfg.model).eval()
features = model.extract_feat(torch.rand(1, 3, 64, 96))
print(type(model).__name__, type(model.backbone).__module__,
      [tuple(f.shape) for f in features])
"""


@pytest.mark.parametrize('library', sorted(LIBRARY_CONFIGS))
def test_library_config_uses_an_mmtwins_backbone(library, tmp_path):
    config = tmp_path / f'{library}_with_mmtwins.py'
    config.write_text(textwrap.dedent(LIBRARY_CONFIGS[library]))
    result = subprocess.run([sys.executable, '-c', BUILD_SCRIPT, str(config)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    model_name, backbone_module, shapes = result.stdout.strip().splitlines()[-1].split(' ', 2)
    assert backbone_module.startswith('mmtwins.models.backbones')
    expected = {
        'mmpretrain': ('ImageClassifier', '[(1, 64)]'),
        'mmseg': ('EncoderDecoder', '[(1, 16, 16, 24), (1, 32, 8, 12), (1, 48, 4, 6), (1, 64, 2, 3)]'),
        'mmdet': ('MaskRCNN', '[(1, 256, 16, 24), (1, 256, 8, 12), (1, 256, 4, 6), '
                  '(1, 256, 2, 3), (1, 256, 1, 2)]'),
    }[library]
    assert (model_name, shapes) == expected


@pytest.fixture
def mmtwins_scope():
    with DefaultScope.overwrite_default_scope('mmtwins'):
        yield


def test_mmtwins_config_builds_models_of_the_three_libraries(mmtwins_scope, tmp_path):
    config = tmp_path / 'mmtwins_mask_rcnn.py'
    config.write_text(textwrap.dedent(f"""
        _base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py']
        default_scope = 'mmtwins'
        model = dict(
            _scope_='mmdet',
            backbone=dict(_delete_=True, type='mmtwins.TwinsSVT', arch={TINY_SVT},
                          out_indices=(0, 1, 2, 3)),
            neck=dict(in_channels={TINY_CHANNELS}))
        """))
    cfg = Config.fromfile(str(config))
    assert cfg.default_scope == 'mmtwins'
    detector = MODELS.build(cfg.model)
    classifier = MODELS.build(dict(
        _scope_='mmpretrain',
        type='ImageClassifier',
        backbone=dict(type='mmtwins.DaViT', arch=TINY_DAVIT),
        neck=dict(type='mmtwins.NormPoolNeck', in_channels=64, order='pool_norm', eps=1e-5),
        head=dict(type='LinearClsHead', num_classes=3, in_channels=64)))
    segmentor = MODELS.build(dict(
        _scope_='mmseg',
        type='EncoderDecoder',
        backbone=dict(type='mmtwins.TwinsPCPVT', arch=TINY_PCPVT, out_indices=(0, 1, 2, 3)),
        decode_head=dict(type='FPNHead', in_channels=TINY_CHANNELS, in_index=[0, 1, 2, 3],
                         feature_strides=[4, 8, 16, 32], channels=16, num_classes=3)))
    assert [type(m).__name__ for m in (detector, classifier, segmentor)] == [
        'MaskRCNN', 'ImageClassifier', 'EncoderDecoder']
    assert type(classifier.backbone).__module__ == 'mmtwins.models.backbones.davit'
    # The nested defaults of each library resolved in that library's scope.
    assert type(classifier.head.loss_module).__module__.startswith('mmpretrain.')
    assert type(segmentor.decode_head.loss_decode).__module__.startswith('mmseg.')
    logits = classifier(torch.rand(2, 3, 40, 56))
    assert logits.shape == (2, 3)


def test_mmtwins_scope_reaches_datasets_transforms_metrics_and_hooks(mmtwins_scope, tmp_path):
    for label in ('cat', 'dog'):
        (tmp_path / label).mkdir()
        torch.save({}, tmp_path / label / 'placeholder.png')  # only listed, never decoded
    dataset = DATASETS.build(dict(
        type='mmpretrain.CustomDataset', data_root=str(tmp_path),
        pipeline=[dict(type='mmpretrain.PackInputs')]))
    assert dataset.CLASSES == ('cat', 'dog') and len(dataset) == 2
    Visualizer.get_instance('test_registry')  # the visualisation hooks draw with it
    built = [
        TRANSFORMS.build(dict(type='mmpretrain.PackInputs')),
        TRANSFORMS.build(dict(type='mmseg.PackSegInputs')),
        TRANSFORMS.build(dict(type='mmdet.PackDetInputs')),
        METRICS.build(dict(type='mmpretrain.Accuracy')),
        METRICS.build(dict(type='mmseg.IoUMetric')),
        METRICS.build(dict(type='mmdet.CocoMetric', metric='bbox')),
        HOOKS.build(dict(type='mmpretrain.VisualizationHook')),
        HOOKS.build(dict(type='mmseg.SegVisualizationHook')),
        HOOKS.build(dict(type='mmdet.DetVisualizationHook')),
    ]
    assert [type(obj).__module__.split('.')[0] for obj in built] == [
        'mmpretrain', 'mmseg', 'mmdet'] * 3


def test_our_names_never_replace_those_of_mmpretrain_and_mmseg(mmtwins_scope):
    import mmpretrain.models  # noqa: F401
    import mmseg.models  # noqa: F401
    from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
    from mmseg.registry import MODELS as MMSEG_MODELS

    for registry, names in ((MMPRETRAIN_MODELS, ('PCPVT', 'SVT', 'DaViT')),
                            (MMSEG_MODELS, ('PCPVT', 'SVT'))):
        for name in names:
            assert registry.get(name).__module__.startswith(registry.scope + '.')
        for ours in ('TwinsPCPVT', 'TwinsSVT', 'NormPoolNeck'):
            assert ours not in registry.module_dict
    assert MODELS.get('DaViT').__module__ == 'mmtwins.models.backbones.davit'
    assert MODELS.get('mmpretrain.DaViT').__module__.startswith('mmpretrain.')
