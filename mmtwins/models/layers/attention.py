"""Multi-head attention on ``scaled_dot_product_attention``, global and windowed.

Twins' GSA and LSA and DaViT's spatial and channel attention all derive from
:class:`MultiheadAttention`: the projections, the head split and the output projection
live here once. Token maps are channels-last ``(B, H, W, C)`` tensors throughout.
"""
from typing import Optional, Tuple

import torch.nn.functional as F
from torch import Tensor, nn

from .fused import can_fuse, fused_linear, linear_dropout_residual
from .window import window_key_mask, window_partition, window_reverse

WINDOW_PADDINGS = ('mask', 'zero')


class MultiheadAttention(nn.Module):
    """Multi-head scaled dot-product attention with a fused ``qkv`` projection.

    ``qkv`` holds the query, key and value projections stacked (in that order) in
    one ``Linear(C, 3C)``: one matrix product when queries and keys come from the
    same tokens; with a separate ``context`` its first C rows project the queries
    and the other 2C the keys and values.

    Args:
        embed_dims: Channels C, a multiple of ``num_heads``.
        num_heads: Number of heads; the head dim is ``C // num_heads`` and the
            scale ``head_dim ** -0.5``.
        qkv_bias: Whether ``qkv`` has a bias.
        attn_drop: Dropout on the attention weights (training only).
        proj_drop: Dropout after the output projection.

    Example:
        >>> import torch
        >>> attn = MultiheadAttention(64, num_heads=2)
        >>> attn(torch.rand(2, 49, 64)).shape
        torch.Size([2, 49, 64])
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 qkv_bias: bool = True,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims={embed_dims} is not a multiple of '
                             f'num_heads={num_heads}')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.head_dims = embed_dims // num_heads
        self.scale = self.head_dims**-0.5
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(embed_dims, 3 * embed_dims, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self,
                x: Tensor,
                context: Optional[Tensor] = None,
                attn_mask: Optional[Tensor] = None,
                residual: Optional[Tensor] = None) -> Tensor:
        """Attends from the tokens ``x`` to ``context`` (default: ``x`` itself).

        Args:
            x: Query tokens ``(B, N, C)``.
            context: Key/value tokens ``(B, M, C)``; None for self-attention.
            attn_mask: Boolean mask broadcastable to ``(B, heads, N, M)``, True
                where a query may attend to a key.
            residual: ``(B, N, C)`` added to the output if given.

        Returns:
            ``(B, N, C)``.
        """
        q, k, v = self.split_qkv(x, context)
        out = self.attend(q, k, v, attn_mask)
        return self.project(out.transpose(1, 2).flatten(2), residual)

    def forward_map(self,
                    x: Tensor,
                    context: Optional[Tensor] = None,
                    residual: Optional[Tensor] = None) -> Tensor:
        """Attends from the tokens of a map: :meth:`forward` for ``(B, H, W, C)`` input.

        Args:
            x: Query tokens ``(B, H, W, C)``.
            context: Key/value tokens ``(B, M, C)``; None for self-attention.
            residual: ``(B, H, W, C)`` added to the output if given.

        Returns:
            ``(B, H, W, C)``.
        """
        residual = None if residual is None else residual.flatten(1, 2)
        # This class's token forward, also in subclasses whose forward takes maps.
        out = MultiheadAttention.forward(self, x.flatten(1, 2), context, residual=residual)
        return out.view_as(x)

    def split_qkv(self, x: Tensor,
                  context: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
        """Queries from ``x``, keys and values from ``context`` (default ``x``).

        Returns:
            ``q, k, v`` views of shape ``(B, heads, N or M, head_dim)``.
        """
        linear = fused_linear if can_fuse(x) else F.linear
        if context is None:
            return self._split_heads(linear(x, self.qkv.weight, self.qkv.bias), 3)
        q_weight, kv_weight = self.qkv.weight.split(
            [self.embed_dims, 2 * self.embed_dims])
        q_bias, kv_bias = (None, None) if self.qkv.bias is None else \
            self.qkv.bias.split([self.embed_dims, 2 * self.embed_dims])
        q, = self._split_heads(linear(x, q_weight, q_bias), 1)
        k, v = self._split_heads(linear(context, kv_weight, kv_bias), 2)
        return q, k, v

    def attend(self,
               q: Tensor,
               k: Tensor,
               v: Tensor,
               attn_mask: Optional[Tensor] = None) -> Tensor:
        """Softmax attention of ``(B, heads, N, head_dim)`` queries, keys and values."""
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask,
            dropout_p=self.attn_drop if self.training else 0.)

    def project(self, x: Tensor, residual: Optional[Tensor] = None) -> Tensor:
        """The output projection (and its dropout) of heads merged into C channels,
        plus ``residual`` if given."""
        return linear_dropout_residual(x, self.proj, self.proj_drop, residual)

    def _split_heads(self, x: Tensor, parts: int) -> Tuple[Tensor, ...]:
        """``(B, N, parts * C)`` -> ``parts`` views of shape ``(B, heads, N, head_dim)``."""
        batch, length, _ = x.shape
        return x.view(batch, length, parts, self.num_heads,
                      self.head_dims).permute(2, 0, 3, 1, 4).unbind(0)


class WindowAttention(MultiheadAttention):
    """Self-attention inside non-overlapping ``window_size`` squares of a token map.

    Used by Twins' LSA and DaViT's spatial blocks (no relative bias, no shift). A map
    that is not a multiple of the window is zero-padded right and bottom first.

    Args:
        embed_dims: Channels C.
        num_heads: Number of heads.
        window_size: Side of the square windows.
        window_padding: ``'mask'`` (default): padded tokens are excluded from the
            keys, so the result on the real tokens does not depend on the padding.
            ``'zero'``: padded tokens take part as keys and values (they project to
            the ``qkv`` bias), exactly as timm and the official detection code do.
        **kwargs: ``qkv_bias``, ``attn_drop``, ``proj_drop`` of
            :class:`MultiheadAttention`.

    Example:
        >>> import torch
        >>> attn = WindowAttention(64, num_heads=2, window_size=7)
        >>> attn(torch.rand(2, 10, 13, 64)).shape
        torch.Size([2, 10, 13, 64])
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 window_size: int = 7,
                 window_padding: str = 'mask',
                 **kwargs) -> None:
        super().__init__(embed_dims, num_heads, **kwargs)
        if not isinstance(window_size, int) or isinstance(window_size, bool) or window_size < 1:
            raise ValueError(f'window_size={window_size!r} must be a positive int')
        if window_padding not in WINDOW_PADDINGS:
            raise ValueError(f'window_padding={window_padding!r} is not one of '
                             f'{WINDOW_PADDINGS}')
        self.window_size = window_size
        self.window_padding = window_padding

    def forward(self, x: Tensor, residual: Optional[Tensor] = None) -> Tensor:
        """Attends over the map.

        Args:
            x: ``(B, H, W, C)`` tokens.
            residual: Added to the output if given (the block's residual sum, fused
                into the output projection).

        Returns:
            ``(B, H, W, C)``.
        """
        batch, height, width, _ = x.shape
        size = self.window_size
        pad_bottom, pad_right = -height % size, -width % size
        attn_mask = None
        if pad_bottom or pad_right:
            x = F.pad(x, (0, 0, 0, pad_right, 0, pad_bottom))
            if self.window_padding == 'mask':
                attn_mask = window_key_mask(height, width, size,
                                            x.device).repeat(batch, 1, 1, 1)
        q, k, v = self.split_qkv(window_partition(x, size))
        # One copy merges the heads and puts the windows back in place; the
        # projection then runs on the whole map, padding included, which costs
        # less than copying the cropped map again.
        out = window_reverse(self.attend(q, k, v, attn_mask), size,
                             height + pad_bottom, width + pad_right)
        if not (pad_bottom or pad_right):
            return self.project(out, residual)
        out = self.project(out)[:, :height, :width]
        return out if residual is None else residual + out
