"""Whole classifiers: building in the mmpretrain scope, key names, compile, ONNX."""
import io
import warnings

import onnxruntime
import pytest
import torch
from mmengine.registry import DefaultScope

from mmtwins.registry import MODELS
from tests.helpers import TINY_DAVIT, TINY_SVT

from .helpers import build_classifier


def classifier_cfg(scope, prefix):
    cfg = dict(
        type=f'{prefix}ImageClassifier',
        backbone=dict(type='mmtwins.DaViT', arch=TINY_DAVIT),
        neck=dict(type='mmtwins.NormPoolNeck', in_channels=64, order='pool_norm',
                  eps=1e-5),
        head=dict(type=f'{prefix}LinearClsHead', num_classes=10, in_channels=64,
                  loss=dict(type=f'{prefix}CrossEntropyLoss')))
    if scope:
        cfg['_scope_'] = scope
    return cfg


@pytest.mark.parametrize('default_scope', [None, 'mmtwins'])
def test_scope_mmpretrain_builds_nested_defaults_anywhere(default_scope):
    # ImageClassifier builds its default data preprocessor by the unprefixed name
    # 'ClsDataPreprocessor': ``_scope_='mmpretrain'`` makes that (and any other
    # unprefixed nested name) resolve in mmpretrain, while 'mmtwins.' types still
    # resolve in ours, whatever the current default scope.
    with DefaultScope.overwrite_default_scope(default_scope):
        model = MODELS.build(classifier_cfg('mmpretrain', ''))
    assert type(model.data_preprocessor).__name__ == 'ClsDataPreprocessor'
    assert type(model.head.loss_module).__name__ == 'CrossEntropyLoss'
    assert type(model.backbone).__module__ == 'mmtwins.models.backbones.davit'


def test_prefixes_alone_fail_under_the_mmtwins_default_scope():
    MODELS.build(classifier_cfg(None, 'mmpretrain.'))  # no default scope: fine
    with DefaultScope.overwrite_default_scope('mmtwins'):
        with pytest.raises(KeyError, match='ClsDataPreprocessor'):
            MODELS.build(classifier_cfg(None, 'mmpretrain.'))


def test_state_dict_keys():
    model = build_classifier(dict(type='TwinsSVT', arch=TINY_SVT), 64, num_classes=10)
    keys = set(model.state_dict())
    assert {'neck.norm.weight', 'neck.norm.bias', 'head.fc.weight', 'head.fc.bias'} <= keys
    assert all(k.startswith(('backbone.stages.', 'neck.', 'head.fc.')) for k in keys)
    assert 'backbone.stages.0.blocks.1.attn.qkv.weight' in keys  # GSA, q|k|v fused
    assert 'backbone.stages.0.blocks.1.attn.sr.weight' in keys
    assert 'backbone.stages.0.pos_enc.proj.weight' in keys


def tiny_classifiers():
    return [
        build_classifier(dict(type='TwinsSVT', arch=TINY_SVT), 64, num_classes=10),
        build_classifier(dict(type='DaViT', arch=TINY_DAVIT), 64, num_classes=10),
    ]


@pytest.mark.parametrize('index', [0, 1], ids=['svt', 'davit'])
def test_traces_as_one_graph(index):
    # Dynamo traces the whole classifier with no graph break (checked with a cheap
    # backend; test_compiles_with_inductor runs the real compiler once).
    torch._dynamo.reset()
    model = tiny_classifiers()[index].eval()
    x = torch.randn(2, 3, 45, 61)
    compiled = torch.compile(model, backend='aot_eager', fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))


def test_compiles_with_inductor():
    # The smallest model that still has LSA with masked padding, GSA with and
    # without sub-sampling, the PEG and the neck: inductor builds C++ with gcc.
    torch._dynamo.reset()
    arch = dict(embed_dims=(16, 32), depths=(2, 2), num_heads=(1, 2),
                mlp_ratios=(2, 2), sr_ratios=(2, 1))
    model = build_classifier(dict(type='TwinsSVT', arch=arch, window_size=4), 32,
                             num_classes=10).eval()
    x = torch.randn(2, 3, 40, 44)
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('index', [0, 1], ids=['svt', 'davit'])
def test_exports_to_onnx(index):
    model = tiny_classifiers()[index].eval()
    x = torch.randn(2, 3, 97, 131)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # the tracer's notes on Python ints
        torch.onnx.export(model, (x, ), buffer, dynamo=False, opset_version=17,
                          input_names=['images'], output_names=['logits'])
    session = onnxruntime.InferenceSession(buffer.getvalue())
    logits, = session.run(None, {'images': x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(logits), model(x),
                                   rtol=1e-4, atol=1e-5)
