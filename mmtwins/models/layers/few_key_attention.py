"""Softmax attention to at most 64 keys by mmtwins' compiled CPU kernel.

At 224 x 224 every attention of Twins and DaViT has 49 keys (a 7 x 7 window, or a map
sub-sampled to 7 x 7). PyTorch's CPU ``scaled_dot_product_attention`` runs such short
attentions at 10 to 20 GFLOP/s: per block of 32 queries and per head it calls two small
BLAS products. ``mmtwins/csrc/few_key_attention.cpp`` keeps one head's keys and values in
cache and the scores of four queries in registers, reads windows where they lie in the
``qkv`` map and returns the heads merged (for windows, in map order), so neither needs a
copy (``docs/benchmark.md``).

The kernel runs forward only, in fp32 on CPU, where :func:`~.fused.can_fuse` holds and
autograd does not record; :func:`attention` otherwise calls
``scaled_dot_product_attention``, and always does without the compiled extension
(``mmtwins._ext``, built by ``pip install --no-build-isolation -e .``). Under
``torch.compile`` the kernel is the custom operator ``mmtwins::few_key_attention``.
"""
from typing import Iterable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .fused import can_fuse

try:
    from mmtwins import _ext
except ImportError:  # installed without building the extension
    _ext = None

MAX_KEYS = 64
HEAD_DIMS = (32, 64)


def is_available() -> bool:
    """Whether the compiled kernel (``mmtwins._ext``) was built and loads."""
    return _ext is not None


def kernel_applies(x: Tensor, num_keys: int, head_dims: int,
                   inputs: Iterable[Tensor]) -> bool:
    """Whether the kernel may compute an attention of ``x``'s tokens.

    Args:
        x: The attention's input (or its queries).
        num_keys: Keys per query.
        head_dims: Channels per head.
        inputs: The tensors the attention's output depends on (input, parameters):
            if autograd records and one of them requires a gradient, the kernel,
            which has no backward, does not apply.

    Example:
        >>> kernel_applies(torch.rand(2, 49, 64), 49, 32, []) == is_available()
        True
    """
    return (_ext is not None and 1 <= num_keys <= MAX_KEYS and head_dims in HEAD_DIMS
            and can_fuse(x)
            and not (torch.is_grad_enabled() and any(t.requires_grad for t in inputs)))


def attention(q: Tensor,
              k: Tensor,
              v: Tensor,
              attn_mask: Optional[Tensor] = None,
              dropout_p: float = 0.) -> Tensor:
    """``scaled_dot_product_attention`` (default scale), by the kernel where it applies.

    Args:
        q: ``(B, heads, N, head_dim)`` queries.
        k: ``(B, heads, M, head_dim)`` keys.
        v: ``(B, heads, M, head_dim)`` values.
        attn_mask: As for ``scaled_dot_product_attention``; the kernel takes none.
        dropout_p: Dropout on the attention weights; the kernel takes none.

    Returns:
        ``(B, heads, N, head_dim)``; from the kernel a view of a ``(B, N, heads,
        head_dim)`` tensor, whose heads ``out.transpose(1, 2).flatten(2)`` merges free.

    Example:
        >>> q, k, v = torch.rand(3, 2, 4, 49, 32).unbind(0)
        >>> out = attention(q, k, v)
        >>> torch.allclose(out, F.scaled_dot_product_attention(q, k, v), atol=1e-6)
        True
    """
    batch, heads, length, head_dims = q.shape
    if (attn_mask is None and not dropout_p
            and all(t.stride(-1) == 1 for t in (q, k, v))
            and kernel_applies(q, k.shape[-2], head_dims, (q, k, v))):
        out = _run_kernel(*(t[:, None, :, None] for t in (q, k, v)))
        return out.view(batch, length, heads, head_dims).transpose(1, 2)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)


def window_attention(qkv: Tensor, window_size: int, num_heads: int) -> Tensor:
    """Self-attention inside the windows of a map of stacked queries, keys and values.

    The kernel reads the windows where they lie and writes the output in map order,
    so neither the windows nor the heads are copied apart and back. Only where
    :func:`kernel_applies` holds.

    Args:
        qkv: ``(B, H, W, 3C)``, the ``qkv`` projection of a ``(B, H, W, C)`` map, H
            and W multiples of ``window_size``.
        window_size: Side of the square windows, at most 8 (64 keys).
        num_heads: Heads; ``C // num_heads`` must be 32 or 64.

    Returns:
        ``(B, H, W, C)``, heads merged.

    Example:
        >>> window_attention(torch.rand(2, 14, 7, 192), 7, 2).shape
        torch.Size([2, 14, 7, 64])
    """
    batch, height, width, channels = qkv.shape
    channels //= 3
    windows = qkv.view(batch * height // window_size, window_size, width // window_size,
                       window_size, 3, num_heads, channels // num_heads)
    q, k, v = windows.permute(4, 0, 2, 5, 1, 3, 6).unbind(0)
    return _run_kernel(q, k, v).view(batch, height, width, channels)


def _run_kernel(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """The kernel on ``(G1, G2, heads, T1, T2, head_dim)`` views; see its source."""
    kernel = _few_key_attention_op if torch.compiler.is_compiling() \
        else _ext.few_key_attention
    return kernel(q, k, v, q.shape[-1]**-0.5)


@torch.library.custom_op('mmtwins::few_key_attention', mutates_args=())
def _few_key_attention_op(q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
    return _ext.few_key_attention(q, k, v, scale)


@_few_key_attention_op.register_fake
def _(q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
    groups1, groups2, heads, rows, cols, head_dims = q.shape
    return q.new_empty((groups1, rows, groups2, cols, heads, head_dims))
