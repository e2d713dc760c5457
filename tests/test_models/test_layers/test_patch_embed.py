"""PatchEmbed: bottom/right padding to the stride, norm before or after."""
import torch
import torch.nn.functional as F

from mmtwins.models.layers import PatchEmbed


def test_pads_to_the_stride_then_normalises():
    torch.manual_seed(0)
    embed = PatchEmbed(3, 8, kernel_size=4).eval()
    x = torch.randn(2, 3, 97, 131)
    out = embed(x)
    assert out.shape == (2, 25, 33, 8)
    expected = embed.proj(F.pad(x, (0, 1, 0, 3))).permute(0, 2, 3, 1)
    torch.testing.assert_close(out, embed.norm(expected))


def test_davit_stem_and_downsampling():
    torch.manual_seed(0)
    stem = PatchEmbed(3, 8, kernel_size=7, stride=4, padding=3)
    x = torch.randn(1, 3, 33, 30)
    expected = stem.norm(stem.proj(F.pad(x, (0, 2, 0, 3))).permute(0, 2, 3, 1))
    torch.testing.assert_close(stem(x), expected)
    assert stem(x).shape == (1, 9, 8, 8)

    down = PatchEmbed(8, 16, kernel_size=2, norm_first=True)
    tokens = torch.randn(1, 9, 8, 8)
    normed = down.norm(tokens).permute(0, 3, 1, 2)
    expected = down.proj(F.pad(normed, (0, 0, 0, 1))).permute(0, 2, 3, 1)
    torch.testing.assert_close(down(tokens.permute(0, 3, 1, 2)), expected)
    assert down.norm.normalized_shape == (8, )


def test_convolves_channels_last_so_the_token_map_needs_no_copy():
    embed = PatchEmbed(3, 8, kernel_size=4)
    conv_outputs = []
    embed.proj.register_forward_hook(lambda module, args, out: conv_outputs.append(out))
    embed(torch.randn(2, 3, 32, 36))
    embed(torch.randn(2, 3, 30, 35))  # padded first
    assert all(out.permute(0, 2, 3, 1).is_contiguous() for out in conv_outputs)
