"""TwinsPCPVT and TwinsSVT: parity with timm, sizes, options, argument checks."""
import math
import re

import pytest
import torch
from torch import nn

from mmtwins.converters.reference import twins_reference_to_mmtwins
from mmtwins.models.backbones.twins import GlobalSubsampledAttention
from mmtwins.models.layers import WindowAttention
from tests.helpers import TINY_PCPVT, TINY_SVT

from ..helpers import (build_backbone, build_classifier, converted_classifier, num_params,
                       perturbed_timm_model, random_projection_loss)

# timm name, our type, arch, last channels, parameter count (spec, 1000 classes)
RELEASED = [
    ('twins_pcpvt_small', 'TwinsPCPVT', 's', 512, 24_106_216),
    ('twins_pcpvt_base', 'TwinsPCPVT', 'base', 512, 43_828_456),
    ('twins_pcpvt_large', 'TwinsPCPVT', 'l', 512, 60_989_672),
    ('twins_svt_small', 'TwinsSVT', 'small', 512, 24_060_776),
    ('twins_svt_base', 'TwinsSVT', 'b', 768, 56_070_952),
    ('twins_svt_large', 'TwinsSVT', 'large', 1024, 99_271_400),
]
TINY = {'TwinsPCPVT': TINY_PCPVT, 'TwinsSVT': TINY_SVT}
FAMILIES = ['TwinsPCPVT', 'TwinsSVT']


@pytest.fixture(scope='module', params=RELEASED, ids=[r[0] for r in RELEASED])
def timm_model(request):
    name, model_type, arch, dims, count = request.param
    return perturbed_timm_model(name), model_type, arch, dims, count


def converted(timm_model, **backbone_options):
    reference, model_type, arch, dims, _ = timm_model
    return converted_classifier(reference,
                                dict(type=model_type, arch=arch, **backbone_options), dims,
                                twins_reference_to_mmtwins)


@torch.no_grad()
def test_parity_at_224(timm_model):
    torch.manual_seed(1)
    x = torch.randn(1, 3, 224, 224)
    expected = timm_model[0](x)
    actual = converted(timm_model)(x)
    assert expected.std() > 0.1  # logits of a real spread, not all near zero
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-4)


@torch.no_grad()
def test_parity_with_zero_window_padding(timm_model):
    # At 160 the stage maps are 40, 20, 10, 5: none a multiple of the 7x7 window.
    # It is a multiple of 32, so timm's flooring patch embedding equals our ceil.
    torch.manual_seed(2)
    x = torch.randn(1, 3, 160, 160)
    expected = timm_model[0](x)
    options = dict(window_padding='zero') if timm_model[1] == 'TwinsSVT' else {}
    torch.testing.assert_close(
        converted(timm_model, **options)(x), expected, rtol=0, atol=1e-4)
    if timm_model[1] == 'TwinsSVT':
        # The default masks the padded keys, which timm does not.
        assert (converted(timm_model)(x) - expected).abs().max() > 1e-3


@pytest.mark.parametrize('model_type,arch,dims,count',
                         [r[1:] for r in RELEASED], ids=[r[0] for r in RELEASED])
def test_parameter_count(model_type, arch, dims, count):
    model = build_classifier(dict(type=model_type, arch=arch), dims, device='meta')
    assert num_params(model) == count


@pytest.mark.parametrize('model_type', FAMILIES)
@pytest.mark.parametrize('size', [(97, 131), (32, 32)])
def test_out_indices_shapes_at_odd_sizes(model_type, size):
    model = build_backbone(type=model_type, arch=TINY[model_type],
                           out_indices=(0, 1, 2, 3)).eval()
    outs = model(torch.rand(2, 3, *size))
    height, width = size
    expected = []
    for stride, dims in zip((4, 8, 16, 32), TINY_PCPVT['embed_dims']):
        expected.append((2, dims, math.ceil(height / stride), math.ceil(width / stride)))
    assert [tuple(out.shape) for out in outs] == expected


@pytest.mark.parametrize('model_type', FAMILIES)
def test_out_indices_subset_and_negative(model_type):
    model = build_backbone(type=model_type, arch=TINY[model_type],
                           out_indices=(-1, 1)).eval()
    outs = model(torch.rand(1, 3, 64, 64))
    assert [out.shape[1] for out in outs] == [32, 64]


@pytest.mark.parametrize('model_type', FAMILIES)
def test_border_pixels_reach_the_output(model_type):
    # 97 x 131 is no multiple of 4: flooring would drop the last row and columns.
    model = build_backbone(type=model_type, arch=TINY[model_type],
                           out_indices=(0, )).eval()
    x = torch.rand(1, 3, 97, 131)
    changed = x.clone()
    changed[..., -1, -1] += 1
    diff = (model(changed)[0] - model(x)[0]).abs()
    assert diff[..., -1, -1].max() > 0


@pytest.mark.parametrize('model_type', FAMILIES)
def test_every_parameter_gets_a_gradient(model_type):
    model = build_backbone(type=model_type, arch=TINY[model_type],
                           out_indices=(0, 1, 2, 3), norm_after_stage=True)
    model.init_weights()
    random_projection_loss(model(torch.rand(2, 3, 45, 61))).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


@pytest.mark.parametrize('model_type', FAMILIES)
def test_with_cp_same_outputs_and_gradients(model_type, monkeypatch):
    import mmtwins.models.layers.block as block_module
    calls = []
    checkpoint = block_module.checkpoint
    monkeypatch.setattr(block_module, 'checkpoint',
                        lambda *a, **k: calls.append(1) or checkpoint(*a, **k))
    results = []
    for with_cp in (False, True):
        torch.manual_seed(0)
        model = build_backbone(type=model_type, arch=TINY[model_type],
                               out_indices=(0, 1, 2, 3), drop_path_rate=0.3,
                               with_cp=with_cp).train()
        x = torch.rand(2, 3, 40, 52)
        torch.manual_seed(1)  # the same drop path draws in both runs
        outs = model(x)
        random_projection_loss(outs).backward()
        results.append((outs, [p.grad for p in model.parameters()]))
    assert len(calls) == sum(TINY[model_type]['depths'])
    (outs, grads), (outs_cp, grads_cp) = results
    for out, out_cp in zip(outs, outs_cp):
        torch.testing.assert_close(out_cp, out)
    for grad, grad_cp in zip(grads, grads_cp):
        torch.testing.assert_close(grad_cp, grad)


@pytest.mark.parametrize('model_type', FAMILIES)
@pytest.mark.parametrize('frozen_stages', [0, 2])
def test_frozen_stages(model_type, frozen_stages):
    model = build_backbone(type=model_type, arch=TINY[model_type],
                           frozen_stages=frozen_stages, drop_rate=0.1)
    assert model.train() is model
    frozen = [model.stages[0].patch_embed, *model.stages[:frozen_stages]]
    frozen_params = {id(p) for module in frozen for p in module.parameters()}
    for param in model.parameters():
        assert param.requires_grad == (id(param) not in frozen_params)
    for module in frozen:
        assert not any(m.training for m in module.modules())
    assert all(m.training for m in model.stages[frozen_stages].blocks.modules())
    # The frozen stem's output is deterministic: the dropout after it is frozen too.
    assert not model.stages[0].drop.training
    assert model.eval() is model and not model.training


@pytest.mark.parametrize('key, value, message', [
    ('depths', 3, 'arch depths=3 must be a sequence of positive ints'),
    ('depths', (2, 0, 2, 1), r'arch depths=\(2, 0, 2, 1\) must be'),
    ('sr_ratios', (8, 4, 0, 1), 'arch sr_ratios=.* positive ints'),
    ('mlp_ratios', (2, 2, 0, 2), 'arch mlp_ratios=.* positive numbers'),
])
def test_custom_arch_values_are_checked(key, value, message):
    with pytest.raises(ValueError, match=message):
        build_backbone(type='TwinsPCPVT', arch=dict(TINY_PCPVT, **{key: value}))
    build_backbone(type='TwinsPCPVT', arch=dict(TINY_PCPVT, mlp_ratios=(2.5, 2, 2, 2)))


@pytest.mark.parametrize('option', [dict(out_indices=True), dict(frozen_stages=True)])
def test_a_bool_is_no_stage_index(option):
    with pytest.raises(ValueError, match=f'{next(iter(option))}=True must be an int'):
        build_backbone(type='TwinsPCPVT', arch=TINY_PCPVT, **option)


def test_norm_eval():
    model = build_backbone(type='TwinsSVT', arch=TINY_SVT, norm_eval=True).train()
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    assert norms and not any(norm.training for norm in norms)
    assert model.stages[0].blocks[0].mlp.training


def test_norm_after_stage_feeds_the_next_stage():
    model = build_backbone(type='TwinsSVT', arch=TINY_SVT, out_indices=(0, 1, 2, 3),
                           norm_after_stage=True).eval()
    inputs = []
    model.stages[1].patch_embed.register_forward_pre_hook(
        lambda module, args: inputs.append(args[0]))
    outs = model(torch.rand(1, 3, 64, 96))
    torch.testing.assert_close(inputs[0], outs[0])
    for out in outs:  # normalised over channels, with LayerNorm weight 1, bias 0
        torch.testing.assert_close(out.mean(1), torch.zeros_like(out[:, 0]),
                                   atol=1e-5, rtol=0)
    names = [n for n, _ in model.named_parameters()
             if re.fullmatch(r'stages\.\d+\.norm\.\w+', n)]
    assert names == [f'stages.{i}.norm.{p}' for i in range(4) for p in ('weight', 'bias')]
    assert model.stages[0].norm.eps == 1e-6


def test_norm_after_stage_per_stage():
    model = build_backbone(type='TwinsPCPVT', arch=TINY_PCPVT,
                           norm_after_stage=(False, True, False, False))
    assert [isinstance(stage.norm, nn.LayerNorm) for stage in model.stages] == \
        [False, True, False, False]


def test_attention_layout():
    svt = build_backbone(type='TwinsSVT', arch=TINY_SVT)
    pcpvt = build_backbone(type='TwinsPCPVT', arch=TINY_PCPVT)
    for stage in svt.stages:
        kinds = [type(block.attn) for block in stage.blocks]
        assert kinds == [WindowAttention, GlobalSubsampledAttention]
        assert stage.blocks[0].attn.window_size == 7
    assert all(isinstance(block.attn, GlobalSubsampledAttention)
               for stage in pcpvt.stages for block in stage.blocks)
    sr_convs = [stage.blocks[0].attn.sr for stage in pcpvt.stages]
    assert [conv.stride[0] for conv in sr_convs[:3]] == [8, 4, 2]
    assert sr_convs[3] is None  # sr 1: plain global attention
    block = svt.stages[0].blocks[0]
    assert block.norm1.eps == block.norm2.eps == 1e-6
    assert svt.stages[0].patch_embed.norm.eps == 1e-5
    assert svt.stages[0].blocks[1].attn.norm.eps == 1e-5


def test_drop_path_schedule():
    model = build_backbone(type='TwinsPCPVT', arch=TINY_PCPVT, drop_path_rate=0.3)
    rates = [getattr(block.drop_path, 'drop_prob', 0.)
             for stage in model.stages for block in stage.blocks]
    torch.testing.assert_close(
        torch.tensor(rates), torch.linspace(0, 0.3, sum(TINY_PCPVT['depths'])))


def test_official_init():
    torch.manual_seed(0)
    model = build_backbone(type='TwinsPCPVT', arch='small')
    model.init_weights()
    sr = model.stages[0].blocks[0].attn.sr  # 64 -> 64, 8x8: fan_out 4096
    assert abs(sr.weight.std().item() - math.sqrt(2 / 4096)) < 0.01 * math.sqrt(2 / 4096)
    peg = model.stages[2].pos_enc.proj  # depthwise 3x3: fan_out 9
    assert abs(peg.weight.std().item() - math.sqrt(2 / 9)) < 0.1 * math.sqrt(2 / 9)
    fc1 = model.stages[2].blocks[0].mlp.fc1
    assert abs(fc1.weight.std().item() - 0.02) < 0.05 * 0.02
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            assert not module.bias.any()
        if isinstance(module, nn.LayerNorm):
            assert module.weight.eq(1).all() and not module.bias.any()


def test_init_cfg_replaces_the_official_init():
    model = build_backbone(
        type='TwinsSVT', arch=TINY_SVT,
        init_cfg=dict(type='Constant', layer='Linear', val=0.5, bias=0.25))
    model.init_weights()
    linear = model.stages[0].blocks[0].mlp.fc1
    assert linear.weight.eq(0.5).all() and linear.bias.eq(0.25).all()


def test_pretrained_loads_over_the_official_init(tmp_path):
    torch.manual_seed(0)
    source = build_backbone(type='TwinsSVT', arch=TINY_SVT)
    partial = {k: v for k, v in source.state_dict().items() if k.startswith('stages.0.')}
    torch.save(partial, tmp_path / 'stage0.pth')
    model = build_backbone(
        type='TwinsSVT', arch=TINY_SVT,
        init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'stage0.pth')))
    model.init_weights()
    for key, value in model.state_dict().items():
        if key.startswith('stages.0.'):
            assert torch.equal(value, partial[key]), key
    # The rest has the official init: std .02, where PyTorch's default for a
    # 48 -> 96 Linear would be 1 / sqrt(3 * 48) = 0.083.
    fc1 = model.stages[2].blocks[0].mlp.fc1
    assert abs(fc1.weight.std().item() - 0.02) < 0.1 * 0.02 and not fc1.bias.any()


@pytest.mark.parametrize('options,message', [
    (dict(arch='tiny'), "arch='tiny' is not a TwinsSVT arch; choose one of "
     "['b', 'base', 'l', 'large', 's', 'small']"),
    (dict(arch=dict(TINY_SVT, sr_ratios=(8, 4))), 'one entry per stage'),
    (dict(arch={k: v for k, v in TINY_SVT.items() if k != 'mlp_ratios'}),
     "missing ['mlp_ratios']"),
    (dict(out_indices=(5, )), 'out_indices=(5,): 5 is out of range for 4 stages'),
    (dict(out_indices=(1, -3)), 'names a stage twice'),
    (dict(frozen_stages=9), 'frozen_stages=9 must be an int in [-1, 4]'),
    (dict(drop_path_rate=1.5), 'drop_path_rate=1.5 must be in [0, 1)'),
    (dict(window_padding='reflect'), "window_padding='reflect' is not one of"),
    (dict(window_size=0), 'window_size=0 must be a positive int'),
    (dict(window_size=2.5), 'window_size=2.5 must be a positive int'),
    (dict(norm_after_stage=(True, False)),
     'norm_after_stage=(True, False) must be a bool or one bool per stage (4)'),
    (dict(norm_after_stage=1), 'norm_after_stage=1 must be a bool'),
    (dict(drop_rate=None), 'drop_rate=None must be in [0, 1)'),
    (dict(arch=dict(TINY_SVT, mlp_ratios=(0.01, 2, 2, 2))),
     'an MLP of 16 channels needs at least one hidden channel, got hidden_dims=0'),
    (dict(in_channels=0), 'in_channels=0 must be a positive int'),
    (dict(arch=dict(TINY_SVT, num_heads=(3, 2, 3, 4))),
     'embed_dims=16 is not a multiple of num_heads=3'),
])
def test_bad_arguments(options, message):
    options = dict(dict(arch=TINY_SVT), **options)
    with pytest.raises(ValueError) as error:
        build_backbone(type='TwinsSVT', **options)
    assert message in str(error.value)


@pytest.mark.parametrize('option', [dict(window_size=7), dict(window_padding='zero')])
def test_pcpvt_has_no_window_options(option):
    with pytest.raises(TypeError, match=next(iter(option))):
        build_backbone(type='TwinsPCPVT', arch=TINY_PCPVT, **option)


def test_svt_names_itself_for_an_unknown_argument():
    # Python's own TypeError named TwinsPCPVT.__init__, the class SVT passes kwargs to.
    with pytest.raises(TypeError, match=r"^TwinsSVT got unexpected keyword arguments "
                       r"\['window_sise'\]$"):
        build_backbone(type='TwinsSVT', arch=TINY_SVT, window_sise=4)
