"""MultiheadAttention and WindowAttention against attention written out by hand."""
import pytest
import torch
import torch.nn.functional as F

from mmtwins.models.layers import (MultiheadAttention, WindowAttention,
                                   window_key_mask, window_partition)


def attention_by_hand(attn, queries, keys_values):
    """softmax(q k^T / sqrt(d)) v then proj, for (N, C) and (M, C) token sets."""
    dims = attn.embed_dims
    weight, bias = attn.qkv.weight, attn.qkv.bias
    q = F.linear(queries, weight[:dims], bias[:dims])
    k = F.linear(keys_values, weight[dims:2 * dims], bias[dims:2 * dims])
    v = F.linear(keys_values, weight[2 * dims:], bias[2 * dims:])
    heads, head_dims = attn.num_heads, attn.head_dims
    q, k, v = (t.reshape(-1, heads, head_dims).transpose(0, 1) for t in (q, k, v))
    out = ((q @ k.transpose(-1, -2)) * head_dims**-0.5).softmax(-1) @ v
    return attn.proj(out.transpose(0, 1).reshape(-1, dims))


def test_self_and_cross_attention_by_hand():
    torch.manual_seed(0)
    attn = MultiheadAttention(12, num_heads=3).eval()
    with torch.no_grad():
        attn.qkv.bias.normal_()
    x, context = torch.randn(2, 10, 12), torch.randn(2, 4, 12)
    self_out, cross_out = attn(x), attn(x, context)
    for image in range(2):
        torch.testing.assert_close(self_out[image], attention_by_hand(attn, x[image], x[image]))
        torch.testing.assert_close(cross_out[image],
                                   attention_by_hand(attn, x[image], context[image]))


def test_no_qkv_bias():
    attn = MultiheadAttention(8, num_heads=2, qkv_bias=False)
    assert attn.qkv.bias is None
    assert attn(torch.randn(1, 5, 8), torch.randn(1, 3, 8)).shape == (1, 5, 8)


def test_attention_dropout_in_training_only():
    torch.manual_seed(0)
    attn = MultiheadAttention(8, num_heads=2, attn_drop=0.5)
    x = torch.randn(1, 16, 8)
    assert not torch.allclose(attn.train()(x), attn.eval()(x))
    torch.testing.assert_close(attn(x), attn(x))


def make_window_attention(padding):
    torch.manual_seed(0)
    attn = WindowAttention(12, num_heads=2, window_size=7, window_padding=padding).eval()
    with torch.no_grad():
        attn.qkv.bias.normal_()  # padded tokens project to this bias in 'zero' mode
    return attn


SIZES = [(10, 13), (14, 10), (10, 14), (9, 9)]


@pytest.mark.parametrize('height,width', SIZES)
def test_masked_windows_equal_attention_on_the_unpadded_windows(height, width):
    attn = make_window_attention('mask')
    x = torch.randn(2, height, width, 12)
    out = attn(x)
    assert out.shape == x.shape
    for image in range(2):
        for top in range(0, height, 7):
            for left in range(0, width, 7):
                window = x[image, top:top + 7, left:left + 7]
                expected = attention_by_hand(attn, window.reshape(-1, 12),
                                             window.reshape(-1, 12))
                torch.testing.assert_close(
                    out[image, top:top + 7, left:left + 7],
                    expected.view_as(window))


@pytest.mark.parametrize('height,width', SIZES)
def test_zero_padding_attends_to_zero_tokens(height, width):
    attn = make_window_attention('zero')
    x = torch.randn(1, height, width, 12)
    padded = F.pad(x, (0, 0, 0, -width % 7, 0, -height % 7))
    out = attn(x)
    for top in range(0, height, 7):
        for left in range(0, width, 7):
            window = padded[0, top:top + 7, left:left + 7].reshape(-1, 12)
            expected = attention_by_hand(attn, window, window).view(7, 7, 12)
            real = out[0, top:top + 7, left:left + 7]
            torch.testing.assert_close(real, expected[:real.shape[0], :real.shape[1]])
    if height % 7 or width % 7:
        assert (out - make_window_attention('mask')(x)).abs().max() > 1e-3


def test_modes_agree_without_padding():
    x = torch.randn(2, 14, 21, 12)
    torch.testing.assert_close(make_window_attention('mask')(x),
                               make_window_attention('zero')(x))


@pytest.mark.parametrize('height,width', SIZES)
def test_padded_keys_cannot_reach_real_tokens(height, width):
    # Whatever sits in the padded positions, the mask keeps it out of every real
    # token's output.
    attn = make_window_attention('mask')
    size = 7
    padded_height, padded_width = height + -height % size, width + -width % size
    mask = window_key_mask(height, width, size, torch.device('cpu'))
    x = torch.randn(1, padded_height, padded_width, 12)
    junk = x.clone()
    junk[:, height:] = torch.randn_like(junk[:, height:]) * 100
    junk[:, :, width:] = torch.randn_like(junk[:, :, width:]) * 100
    outs = [MultiheadAttention.forward(attn, window_partition(t, size), attn_mask=mask)
            for t in (x, junk)]
    real = mask[:, 0, 0]
    torch.testing.assert_close(outs[0][real], outs[1][real])
    assert (outs[0][~real] - outs[1][~real]).abs().max() > 1e-3
