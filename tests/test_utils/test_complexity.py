"""Parameter and FLOP counts: known answers, independent counters, the three tasks."""
import dataclasses

import pytest
import timm
import torch
import torch.nn.functional as F
from mmengine.analysis import FlopAnalyzer
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mmtwins.apis import get_model
from mmtwins.registry import MODELS
from mmtwins.utils.complexity import (PublishedFlops, count_complexity, flop_analyzer,
                                      published_flops)
from tests.helpers import TINY_DAVIT, TINY_PCPVT, TINY_SVT
from tests.test_tools.complexity_helpers import write_tiny_configs


class ProjectedAttention(nn.Module):
    """Queries through a Linear(E, E), then one scaled_dot_product_attention."""

    def __init__(self, channels: int, enable_gqa: bool = False) -> None:
        super().__init__()
        self.linear = nn.Linear(channels, channels)
        self.enable_gqa = enable_gqa

    def forward(self, q, k, v, mask):
        return F.scaled_dot_product_attention(self.linear(q), k, v, attn_mask=mask,
                                              enable_gqa=self.enable_gqa)


# batch, query heads, key/value heads, L queries, S keys, E query/key dims, Ev value dims
ATTENTION_CASES = {
    'self-attention': (2, 3, 3, 49, 49, 16, 16),
    'sub-sampled keys (GSA)': (1, 2, 2, 196, 4, 32, 32),
    'value dims differ': (2, 1, 1, 10, 7, 8, 24),
    'grouped-query': (1, 4, 2, 12, 20, 8, 8),
}


def _attention_inputs(batch, heads, kv_heads, queries, keys, dims, value_dims, masked=False):
    q = torch.rand(batch, heads, queries, dims)
    k = torch.rand(batch, kv_heads, keys, dims)
    v = torch.rand(batch, kv_heads, keys, value_dims)
    mask = torch.rand(batch, 1, queries, keys) > .3 if masked else None
    if mask is not None:
        mask[..., 0] = True  # every query keeps a key
    return q, k, v, mask


@pytest.mark.parametrize('masked', [False, True], ids=['no mask', 'mask'])
@pytest.mark.parametrize('case', ATTENTION_CASES.values(), ids=list(ATTENTION_CASES))
def test_attention_counts_both_products(case, masked):
    batch, heads, kv_heads, queries, keys, dims, value_dims = case
    inputs = _attention_inputs(*case, masked=masked)
    model = ProjectedAttention(dims, enable_gqa=heads != kv_heads)
    analyzer = flop_analyzer(model, inputs)
    linear = batch * heads * queries * dims * dims
    scores, weighted_values = (batch * heads * queries * keys * dims,
                               batch * heads * queries * keys * value_dims)
    assert analyzer.by_operator() == {'linear': linear,
                                      'scaled_dot_product_attention': scores + weighted_values}
    assert not analyzer.unsupported_ops()


@pytest.mark.parametrize('case', list(ATTENTION_CASES.values())[:3],
                         ids=list(ATTENTION_CASES)[:3])
def test_attention_count_agrees_with_pytorchs_flop_counter(case):
    inputs = _attention_inputs(*case)
    model = ProjectedAttention(case[5])
    with FlopCounterMode(display=False) as pytorch_counter:
        model(*inputs)
    # PyTorch counts a multiply and an add as two FLOPs.
    assert flop_analyzer(model, inputs).total() * 2 == pytorch_counter.get_total_flops()


def _mmtwins_classifier(backbone: str, arch: dict) -> nn.Module:
    is_davit = backbone == 'DaViT'
    neck = dict(type='mmtwins.NormPoolNeck', in_channels=64)
    if is_davit:
        neck.update(order='pool_norm', eps=1e-5)
    return MODELS.build(dict(
        _scope_='mmpretrain', type='ImageClassifier',
        backbone=dict(type=f'mmtwins.{backbone}', arch=arch), neck=neck,
        head=dict(type='LinearClsHead', num_classes=10, in_channels=64))).eval()


def _timm_with_matmul_attention(name: str, arch: dict) -> nn.Module:
    model = timm.create_model(name, num_classes=10, **{k: list(v) for k, v in arch.items()})
    for module in model.modules():
        if hasattr(module, 'fused_attn'):
            module.fused_attn = False  # attention as q @ k^T and attn @ v
    return model.eval()


@pytest.mark.parametrize('backbone, timm_name, arch', [
    ('TwinsPCPVT', 'twins_pcpvt_small', TINY_PCPVT),
    ('TwinsSVT', 'twins_svt_small', TINY_SVT),
    ('DaViT', 'davit_tiny', TINY_DAVIT),
])
def test_our_attention_counts_as_fvcore_counts_timms_matmul_attention(backbone, timm_name,
                                                                      arch):
    """Our models attend through one SDPA call; timm's, unfused, through matmuls, which
    fvcore's rules count unaided: each operator class comes to the same number."""
    # At 224 no attention window is padded (on a padded map our window attention projects
    # the padding too, which timm crops first, so the linear layers would differ).
    ours = count_complexity(_mmtwins_classifier(backbone, arch), (224, 224)).analyzer
    timm_analyzer = FlopAnalyzer(_timm_with_matmul_attention(timm_name, arch),
                                 (torch.rand(1, 3, 224, 224), ))
    theirs = timm_analyzer.unsupported_ops_warnings(False).by_operator()
    ours = ours.by_operator()
    assert ours['scaled_dot_product_attention'] > 0
    assert (ours['scaled_dot_product_attention'] + ours['matmul'] == theirs['matmul'])
    for op in ('conv', 'linear', 'layer_norm'):
        assert ours[op] == theirs[op], op


def test_classifier_counts_backbone_neck_and_head():
    model = _mmtwins_classifier('TwinsSVT', TINY_SVT)
    result = count_complexity(model)
    analyzer = result.analyzer
    assert (result.task, result.input_shape) == ('classification', (224, 224))
    assert result.flops == sum(analyzer.total(name) for name in ('backbone', 'neck', 'head'))
    assert analyzer.total('head') == 64 * 10
    assert result.params == sum(p.numel() for p in model.parameters())
    assert {'aten::add', 'aten::gelu'} <= set(result.uncounted_ops)


@pytest.fixture(scope='module')
def tiny_configs(tmp_path_factory):
    return write_tiny_configs(tmp_path_factory.mktemp('configs'))


def _top_level_modules_with_flops(analyzer: FlopAnalyzer) -> set:
    return {name for name, flops in analyzer.by_module().items()
            if flops and name and '.' not in name}


def test_segmentor_runs_its_decode_head_not_its_auxiliary_head(tiny_configs):
    model = get_model(tiny_configs['segmentation'])
    result = count_complexity(model, (64, 96))
    analyzer = result.analyzer
    assert (result.task, result.input_shape) == ('segmentation', (64, 96))
    # Only these two run. (The decode head's own resizes count at the top level, not in
    # decode_head: mmseg calls decode_head.forward directly, past the hook that names it.)
    assert _top_level_modules_with_flops(analyzer) == {'backbone', 'decode_head'}
    assert analyzer.total('auxiliary_head') == 0
    assert result.params == sum(p.numel() for p in model.parameters())


def test_detector_counts_its_heads_on_the_padded_image(tiny_configs):
    result = count_complexity(get_model(tiny_configs['detection']), (100, 140))
    analyzer = result.analyzer
    assert (result.task, result.input_shape) == ('detection', (128, 160))  # padded to 32
    parts = ('backbone', 'neck', 'rpn_head', 'roi_head.bbox_head', 'roi_head.mask_head')
    assert all(analyzer.total(part) > 0 for part in parts)
    assert result.flops == sum(analyzer.total(part) for part in parts)


def test_counting_leaves_the_model_as_it_was():
    model = _mmtwins_classifier('DaViT', TINY_DAVIT).train()
    count_complexity(model, (64, 64))
    assert model.training and 'forward' not in vars(model)
    assert model(torch.rand(1, 3, 64, 64), mode='tensor').shape == (1, 10)


def test_a_model_of_no_task_library_is_refused():
    with pytest.raises(ValueError, match='Linear is no mmpretrain, mmseg or mmdet model'):
        count_complexity(nn.Linear(3, 3))


def test_published_figures_only_for_zoo_models_at_the_default_size(tiny_configs):
    # A zoo model made tiny keeps its zoo entry: the logic, without a full-size build.
    zoo_model = get_model('davit-t_4xb256_in1k',
                          backbone=dict(arch=dict(_delete_=True, **TINY_DAVIT)),
                          neck=dict(in_channels=64), head=dict(in_channels=64))
    at_64 = count_complexity(zoo_model, (64, 64))
    assert published_flops(zoo_model, at_64) is None
    at_224 = dataclasses.replace(at_64, input_shape=(224, 224))
    assert published_flops(zoo_model, at_224) == PublishedFlops(4540000000, True)
    from_config = get_model(tiny_configs['classification'])
    assert published_flops(from_config, at_224) is None


def test_published_twins_figures_leave_out_the_attention_products():
    zoo_model = get_model('pcpvt-s_8xb128_in1k',
                          backbone=dict(arch=dict(_delete_=True, **TINY_PCPVT)),
                          neck=dict(in_channels=64), head=dict(in_channels=64))
    result = dataclasses.replace(count_complexity(zoo_model, (64, 64)),
                                 input_shape=(224, 224))
    assert published_flops(zoo_model, result) == PublishedFlops(3670000000, False)
    # Every attention of PCPVT is one scaled_dot_product_attention call.
    assert 0 < result.sdpa_flops < result.flops
    assert 'matmul' not in result.analyzer.by_operator()
