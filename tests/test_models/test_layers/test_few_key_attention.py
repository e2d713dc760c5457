"""mmtwins' attention kernel (mmtwins._ext) against scaled_dot_product_attention."""
from unittest import mock

import pytest
import torch
import torch.nn.functional as F

from mmtwins.models.backbones.twins import GlobalSubsampledAttention
from mmtwins.models.layers import (WindowAttention, few_key_attention, window_partition,
                                   window_reverse)
from mmtwins.models.layers.few_key_attention import (attention, kernel_applies,
                                                     window_attention)


def test_the_kernel_is_built():
    # tools/setup_env.sh builds it; without it every attention silently runs slower.
    assert few_key_attention.is_available()


def fused_qkv(batch, heads, queries, keys, head_dims, seed=0):
    """q, k, v as the views of one qkv product that the model passes (strided)."""
    torch.manual_seed(seed)
    qkv = torch.randn(batch, max(queries, keys), 3, heads, head_dims) * 2
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    return q[:, :, :queries], k[:, :, :keys], v[:, :, :keys]


class CountingExt:
    """Stands for mmtwins._ext and counts the kernel's calls."""

    def __init__(self, ext):
        self.ext = ext
        self.calls = 0

    def few_key_attention(self, *args):
        self.calls += 1
        return self.ext.few_key_attention(*args)


@pytest.fixture
def counting_ext():
    ext = CountingExt(few_key_attention._ext)
    with mock.patch.object(few_key_attention, '_ext', ext):
        yield ext


@pytest.mark.parametrize('keys', [1, 15, 16, 17, 33, 49, 64])
@pytest.mark.parametrize('head_dims', [32, 64])
@pytest.mark.parametrize('queries', [1, 5, 49, 130])
def test_matches_sdpa(keys, head_dims, queries, counting_ext):
    q, k, v = fused_qkv(2, 3, queries, keys, head_dims)
    with torch.inference_mode():
        out = attention(q, k, v)
    assert counting_ext.calls == 1 and out.shape == q.shape
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v),
                               rtol=1e-5, atol=1e-5)
    # The heads come merged: (B, N, heads, D) memory, viewed as (B, heads, N, D).
    assert out.transpose(1, 2).is_contiguous()


def test_large_scores_do_not_overflow(counting_ext):
    q, k, v = fused_qkv(1, 2, 9, 49, 32)
    q, k = q * 30, k * 30  # scores in the thousands: exp needs the max subtracted
    with torch.inference_mode():
        out = attention(q, k, v)
    assert counting_ext.calls == 1 and torch.isfinite(out).all()
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('threads', [1, 3])
def test_same_result_on_any_number_of_threads(threads, counting_ext):
    q, k, v = fused_qkv(2, 2, 200, 49, 32)  # 4 chunks of queries per head
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            out = attention(q, k, v)
    finally:
        torch.set_num_threads(previous)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('case', [
    dict(keys=65), dict(head_dims=48), dict(mask=True), dict(dropout=0.1),
    dict(dtype=torch.float64), dict(grad=True)
], ids=lambda case: next(iter(case)))
def test_falls_back_to_sdpa(case, counting_ext):
    q, k, v = fused_qkv(2, 2, 10, case.get('keys', 49), case.get('head_dims', 32))
    q, k, v = (t.to(case.get('dtype', torch.float32)) for t in (q, k, v))
    mask = torch.rand(2, 1, 10, k.shape[2]) > 0.3 if 'mask' in case else None
    if 'grad' in case:
        q.requires_grad_()
    torch.manual_seed(0)
    out = attention(q, k, v, mask, case.get('dropout', 0.))
    torch.manual_seed(0)
    expected = F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, dropout_p=case.get('dropout', 0.))
    assert counting_ext.calls == 0
    torch.testing.assert_close(out, expected)
    if 'grad' in case:
        out.sum().backward()
        assert q.grad is not None


def test_kernel_applies_only_without_autograd():
    x, weight = torch.rand(2, 49, 64), torch.rand(8, 8, requires_grad=True)
    assert kernel_applies(x, 49, 32, [weight]) != torch.is_grad_enabled()
    with torch.no_grad():
        assert kernel_applies(x, 49, 32, [weight])
    assert not kernel_applies(x, 65, 32, []) and not kernel_applies(x, 49, 16, [])


def test_window_attention_matches_partition_sdpa_reverse(counting_ext):
    torch.manual_seed(0)
    qkv = torch.randn(2, 14, 21, 3 * 96)  # 2 x 3 windows of 7, 3 heads of 32
    windows = window_partition(qkv, 7)
    q, k, v = windows.view(-1, 49, 3, 3, 32).permute(2, 0, 3, 1, 4).unbind(0)
    expected = window_reverse(F.scaled_dot_product_attention(q, k, v), 7, 14, 21)
    with torch.inference_mode():
        out = window_attention(qkv, 7, 3)
    assert counting_ext.calls == 1
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('padding', ['mask', 'zero'])
@pytest.mark.parametrize('size', [(14, 21), (10, 13)])
def test_window_attention_module_same_with_and_without_kernel(padding, size,
                                                              counting_ext):
    torch.manual_seed(0)
    attn = WindowAttention(64, num_heads=2, window_size=7, window_padding=padding).eval()
    with torch.no_grad():
        attn.qkv.bias.normal_()
    x = torch.randn(2, *size, 64)
    with torch.no_grad():
        out = attn(x)
        with mock.patch.object(few_key_attention, '_ext', None):
            expected = attn(x)
    # Padded keys are masked in 'mask' mode, which the kernel does not do.
    padded = size != (14, 21)
    assert counting_ext.calls == (0 if padded and padding == 'mask' else 1)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_sub_sampled_attention_same_with_and_without_kernel(counting_ext):
    torch.manual_seed(0)
    attn = GlobalSubsampledAttention(64, num_heads=1, sr_ratio=4).eval()
    x = torch.randn(2, 28, 28, 64)  # 784 queries, 7 x 7 keys
    with torch.no_grad():
        out = attn(x)
        with mock.patch.object(few_key_attention, '_ext', None):
            expected = attn(x)
    assert counting_ext.calls == 1
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_compiles_as_a_custom_op(counting_ext):
    torch._dynamo.reset()
    torch.manual_seed(0)
    attn = WindowAttention(64, num_heads=2, window_size=7).eval()
    x = torch.randn(2, 14, 14, 64)
    compiled = torch.compile(attn, fullgraph=True)
    with torch.no_grad():
        expected = attn(x)
        torch.testing.assert_close(compiled(x), expected, rtol=1e-5, atol=1e-5)
    assert counting_ext.calls == 2  # eager, then compiled (the op itself, not a copy)


@pytest.mark.parametrize('bad,message', [
    (lambda q: q.double(), '6-D float32 CPU tensor'),
    (lambda q: q[..., 0], '6-D float32 CPU tensor'),
    (lambda q: q.transpose(-1, -2), 'last dimension of query must be contiguous'),
])
def test_kernel_rejects_bad_input(bad, message):
    q = torch.rand(1, 1, 2, 1, 49, 32)
    with pytest.raises(RuntimeError, match=message):
        few_key_attention._ext.few_key_attention(bad(q), q, q, 1.)


def test_kernel_rejects_too_many_keys_and_odd_head_dims():
    q = torch.rand(1, 1, 2, 1, 65, 32)
    with pytest.raises(RuntimeError, match='65 keys, supported 1 to 64'):
        few_key_attention._ext.few_key_attention(q, q, q, 1.)
    q = torch.rand(1, 1, 2, 1, 9, 48)
    with pytest.raises(RuntimeError, match='head dim 48'):
        few_key_attention._ext.few_key_attention(q, q, q, 1.)
