"""DaViT: parity with timm, channel attention, sizes, options, argument checks."""
import math

import pytest
import torch
from torch import nn

from mmtwins.converters.reference import davit_reference_to_mmtwins
from mmtwins.models.backbones.davit import ChannelAttention
from tests.helpers import TINY_DAVIT

from ..helpers import (build_backbone, build_classifier, converted_classifier, num_params,
                       perturbed_timm_model, random_projection_loss)

# timm name, arch, last channels, parameter count (spec, 1000 classes)
RELEASED = [
    ('davit_tiny', 't', 768, 28_360_168),
    ('davit_small', 'small', 768, 49_745_896),
    ('davit_base', 'b', 1024, 87_954_408),
]
UNRELEASED = [
    ('large', 1536, 196_811_752),
    ('h', 2048, 348_922_856),
    ('giant', 3072, 1_406_470_120),
]


@pytest.fixture(scope='module', params=RELEASED, ids=[r[0] for r in RELEASED])
def timm_model(request):
    name, arch, dims, _ = request.param
    return perturbed_timm_model(name), arch, dims


def converted(timm_model, **backbone_options):
    reference, arch, dims = timm_model
    return converted_classifier(reference, dict(type='DaViT', arch=arch, **backbone_options),
                                dims, davit_reference_to_mmtwins)


@torch.no_grad()
def test_parity_at_224(timm_model):
    torch.manual_seed(1)
    x = torch.randn(1, 3, 224, 224)
    expected = timm_model[0](x)
    assert expected.std() > 0.1
    torch.testing.assert_close(converted(timm_model)(x), expected, rtol=0, atol=1e-4)


@torch.no_grad()
def test_parity_with_zero_window_padding(timm_model):
    # Stage maps 40, 20, 10, 5: every spatial block pads its 7x7 windows.
    torch.manual_seed(2)
    x = torch.randn(1, 3, 160, 160)
    expected = timm_model[0](x)
    torch.testing.assert_close(
        converted(timm_model, window_padding='zero')(x), expected, rtol=0, atol=1e-4)
    assert (converted(timm_model)(x) - expected).abs().max() > 1e-3


@pytest.mark.parametrize('arch,dims,count',
                         [r[1:] for r in RELEASED] + UNRELEASED,
                         ids=[r[0] for r in RELEASED] + [r[0] for r in UNRELEASED])
def test_parameter_count(arch, dims, count):
    model = build_classifier(dict(type='DaViT', arch=arch), dims, device='meta')
    assert num_params(model) == count


def test_arch_names():
    from mmtwins.models import DaViT
    for short, long in zip('tsblhg', ('tiny', 'small', 'base', 'large', 'huge', 'giant')):
        assert DaViT.arch_zoo[short] is DaViT.arch_zoo[long]
    model = build_backbone(type='DaViT', arch='Tiny')  # case-insensitive
    assert model.arch_settings == dict(
        embed_dims=(96, 192, 384, 768), depths=(1, 1, 3, 1), num_heads=(3, 6, 12, 24))


def test_channel_attention_follows_the_official_order():
    torch.manual_seed(0)
    attn = ChannelAttention(24, num_heads=3).eval()
    x = torch.randn(2, 5, 6, 24)
    batch, tokens, heads, dims = 2, 30, 3, 8
    q, k, v = (attn.qkv(x.reshape(batch, tokens, 24)).reshape(
        batch, tokens, 3, heads, dims).permute(2, 0, 3, 1, 4))
    weights = ((k * dims**-0.5).transpose(-1, -2) @ v).softmax(-1)  # (B, h, d, d)
    expected = (weights @ q.transpose(-1, -2)).transpose(-1, -2)
    expected = attn.proj(expected.transpose(1, 2).reshape(batch, tokens, 24))
    actual = attn(x)
    torch.testing.assert_close(actual, expected.view(batch, 5, 6, 24))
    # The usual q-k-v roles give a different result: the test can tell them apart.
    swapped = (((q * dims**-0.5).transpose(-1, -2) @ k).softmax(-1)
               @ v.transpose(-1, -2)).transpose(-1, -2)
    swapped = attn.proj(swapped.transpose(1, 2).reshape(batch, tokens, 24))
    assert (swapped.view_as(actual) - actual).abs().max() > 1e-3


@pytest.mark.parametrize('size', [(97, 131), (32, 32)])
def test_out_indices_shapes_at_odd_sizes(size):
    model = build_backbone(type='DaViT', arch=TINY_DAVIT,
                           out_indices=(0, 1, 2, 3)).eval()
    outs = model(torch.rand(2, 3, *size))
    height, width = size
    expected = [(2, dims, math.ceil(height / stride), math.ceil(width / stride))
                for stride, dims in zip((4, 8, 16, 32), TINY_DAVIT['embed_dims'])]
    assert [tuple(out.shape) for out in outs] == expected


def test_border_pixels_reach_the_output():
    model = build_backbone(type='DaViT', arch=TINY_DAVIT, out_indices=(0, )).eval()
    x = torch.rand(1, 3, 97, 131)
    changed = x.clone()
    changed[..., -1, -1] += 1
    assert (model(changed)[0] - model(x)[0])[..., -1, -1].abs().max() > 0


def test_every_parameter_gets_a_gradient():
    model = build_backbone(type='DaViT', arch=TINY_DAVIT, out_indices=(0, 1, 2, 3),
                           norm_outputs=True)
    model.init_weights()
    random_projection_loss(model(torch.rand(2, 3, 45, 61))).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_with_cp_same_outputs_and_gradients(monkeypatch):
    import mmtwins.models.layers.block as block_module
    calls = []
    checkpoint = block_module.checkpoint
    monkeypatch.setattr(block_module, 'checkpoint',
                        lambda *a, **k: calls.append(1) or checkpoint(*a, **k))
    results = []
    for with_cp in (False, True):
        torch.manual_seed(0)
        model = build_backbone(type='DaViT', arch=TINY_DAVIT, out_indices=(0, 1, 2, 3),
                               drop_path_rate=0.3, with_cp=with_cp).train()
        x = torch.rand(2, 3, 40, 52)
        torch.manual_seed(1)
        outs = model(x)
        random_projection_loss(outs).backward()
        results.append((outs, [p.grad for p in model.parameters()]))
    assert len(calls) == sum(TINY_DAVIT['depths'])  # one per DaViT block
    (outs, grads), (outs_cp, grads_cp) = results
    for out, out_cp in zip(outs, outs_cp):
        torch.testing.assert_close(out_cp, out)
    for grad, grad_cp in zip(grads, grads_cp):
        torch.testing.assert_close(grad_cp, grad)


@pytest.mark.parametrize('frozen_stages', [0, 3])
def test_frozen_stages(frozen_stages):
    model = build_backbone(type='DaViT', arch=TINY_DAVIT, frozen_stages=frozen_stages,
                           out_indices=(0, 1, 2, 3), norm_outputs=True)
    assert model.train() is model
    frozen = [model.stages[0].patch_embed, *model.stages[:frozen_stages]]
    frozen_params = {id(p) for module in frozen for p in module.parameters()}
    for param in model.parameters():
        assert param.requires_grad == (id(param) not in frozen_params)
    for module in frozen:
        assert not any(m.training for m in module.modules())
    assert all(m.training for m in model.stages[frozen_stages].blocks.modules())
    if frozen_stages:
        assert not model.stages[0].out_norm.weight.requires_grad


def test_drop_path_schedule_is_per_sub_block():
    model = build_backbone(type='DaViT', arch=TINY_DAVIT, drop_path_rate=0.2)
    rates = [getattr(sub.drop_path, 'drop_prob', 0.)
             for stage in model.stages for block in stage.blocks
             for sub in (block.spatial, block.channel)]
    torch.testing.assert_close(
        torch.tensor(rates), torch.linspace(0, 0.2, 2 * sum(TINY_DAVIT['depths'])))


@torch.no_grad()
def test_norm_outputs_normalise_returned_maps_only():
    torch.manual_seed(0)
    plain = build_backbone(type='DaViT', arch=TINY_DAVIT, out_indices=(0, 1, 2, 3)).eval()
    normed = build_backbone(type='DaViT', arch=TINY_DAVIT, out_indices=(0, 1, 2, 3),
                            norm_outputs=True).eval()
    with torch.no_grad():
        for index, stage in enumerate(normed.stages):
            stage.out_norm.weight.uniform_(0.5, 1.5)
            stage.out_norm.bias.uniform_(-1, 1)
    missing, unexpected = normed.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and len(missing) == 8
    x = torch.rand(1, 3, 64, 80)
    for raw, out, stage in zip(plain(x), normed(x), normed.stages):
        expected = stage.out_norm(raw.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        torch.testing.assert_close(out, expected)


def test_norm_outputs_only_for_returned_stages():
    model = build_backbone(type='DaViT', arch=TINY_DAVIT, out_indices=(1, 3),
                           norm_outputs=True)
    assert [stage.out_norm is not None for stage in model.stages] == \
        [False, True, False, True]


def test_layout():
    model = build_backbone(type='DaViT', arch=TINY_DAVIT)
    stem, down = model.stages[0].patch_embed, model.stages[1].patch_embed
    assert (stem.proj.kernel_size, stem.proj.stride, stem.proj.padding) == \
        ((7, 7), (4, 4), (3, 3))
    assert not stem.norm_first and stem.norm.normalized_shape == (16, )
    assert down.norm_first and down.norm.normalized_shape == (16, )
    assert (down.proj.kernel_size, down.proj.stride) == ((2, 2), (2, 2))
    block = model.stages[0].blocks[0]
    for sub in (block.spatial, block.channel):
        assert sub.norm1.eps == sub.norm2.eps == 1e-5
        assert isinstance(sub.cpe1.proj, nn.Conv2d) and sub.cpe1.proj.groups == 16
    assert isinstance(block.channel.attn, ChannelAttention)
    assert block.spatial.attn.window_size == 7


def test_official_init():
    torch.manual_seed(0)
    model = build_backbone(type='DaViT', arch=TINY_DAVIT)
    conv_before = model.stages[0].blocks[0].spatial.cpe1.proj.weight.clone()
    model.init_weights()
    fc1 = model.stages[2].blocks[0].channel.mlp.fc1  # 48 x 192
    assert abs(fc1.weight.std().item() - 0.02) < 0.1 * 0.02
    assert not fc1.bias.any()
    norm = model.stages[1].blocks[0].spatial.norm1
    assert norm.weight.eq(1).all() and not norm.bias.any()
    # Convolutions keep PyTorch's default initialisation, as official.
    torch.testing.assert_close(model.stages[0].blocks[0].spatial.cpe1.proj.weight,
                               conv_before)


@pytest.mark.parametrize('options,message', [
    (dict(arch='xl'), "arch='xl' is not a DaViT arch; choose one of ['b', 'base', "
     "'g', 'giant', 'h', 'huge', 'l', 'large', 's', 'small', 't', 'tiny']"),
    (dict(arch=dict(TINY_DAVIT, window_size=7)), "unknown ['window_size']"),
    (dict(out_indices=(4, )), 'out_indices=(4,): 4 is out of range for 4 stages'),
    (dict(out_indices=()), 'non-empty sequence of ints'),
    (dict(frozen_stages=-2), 'frozen_stages=-2 must be an int in [-1, 4]'),
    (dict(attn_drop_rate=-0.1), 'attn_drop_rate=-0.1 must be in [0, 1)'),
    (dict(window_size=0), 'window_size=0 must be a positive int'),
    (dict(window_size=True), 'window_size=True must be a positive int'),
    (dict(mlp_ratio=0), 'needs at least one hidden channel, got hidden_dims=0'),
    (dict(mlp_ratio=-1), 'needs at least one hidden channel, got hidden_dims=-'),
    (dict(window_padding='none'), "window_padding='none' is not one of"),
])
def test_bad_arguments(options, message):
    options = dict(dict(arch=TINY_DAVIT), **options)
    with pytest.raises(ValueError) as error:
        build_backbone(type='DaViT', **options)
    assert message in str(error.value)
