"""The pre-norm transformer block shared by Twins and DaViT."""
from typing import Callable

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .drop_path import ResidualDropPath
from .mlp import Mlp
from .position_encoding import ConvPositionEncoding


class TransformerBlock(nn.Module):
    """``x + DropPath(attn(norm1(x)))`` then ``x + DropPath(mlp(norm2(x)))``.

    With ``with_cpe`` (DaViT) a convolutional position encoding precedes each of
    the two residual branches (``cpe1``, ``cpe2``).

    Args:
        embed_dims: Channels C.
        attn: Attention mapping ``(B, H, W, C)`` to ``(B, H, W, C)``, with a
            ``residual`` keyword argument that it adds to its output.
        mlp_ratio: Hidden channels of the MLP over C.
        drop_rate: Dropout inside the MLP.
        drop_path_rate: Stochastic depth rate, one draw per residual branch.
        norm_eps: Epsilon of both LayerNorms.
        with_cpe: Whether to add the two position encodings.

    Example:
        >>> from mmtwins.models.layers import WindowAttention
        >>> block = TransformerBlock(64, WindowAttention(64, 2), norm_eps=1e-6)
        >>> block(torch.rand(2, 14, 14, 64)).shape
        torch.Size([2, 14, 14, 64])
    """

    def __init__(self,
                 embed_dims: int,
                 attn: nn.Module,
                 mlp_ratio: float = 4.,
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 norm_eps: float = 1e-5,
                 with_cpe: bool = False) -> None:
        super().__init__()
        self.cpe1 = ConvPositionEncoding(embed_dims) if with_cpe else nn.Identity()
        self.norm1 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.attn = attn
        self.cpe2 = ConvPositionEncoding(embed_dims) if with_cpe else nn.Identity()
        self.norm2 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio), drop_rate)
        self.drop_path = ResidualDropPath(
            drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """Runs the attention branch, then the MLP branch.

        Args:
            x: ``(B, H, W, C)`` tokens.

        Returns:
            ``(B, H, W, C)``.
        """
        x = self.residual(self.attn, self.norm1, self.cpe1(x))
        return self.residual(self.mlp, self.norm2, self.cpe2(x))

    def residual(self, branch: nn.Module, norm: nn.Module, x: Tensor) -> Tensor:
        """``x + DropPath(branch(norm(x)))``.

        Without an active drop path the branch adds ``x`` itself, inside its last
        linear layer where that is fused (:mod:`~mmtwins.models.layers.fused`).
        """
        if self.training and not isinstance(self.drop_path, nn.Identity):
            return self.drop_path(x, branch(norm(x)))
        return branch(norm(x), residual=x)


def run_block(block: Callable[[Tensor], Tensor], x: Tensor,
              with_cp: bool) -> Tensor:
    """Runs ``block(x)``, recomputing its activations in backward if ``with_cp``.

    Args:
        block: The module to run.
        x: Its input.
        with_cp: Gradient checkpointing (non-reentrant, so parameters get their
            gradients even when ``x`` needs none); skipped when no graph is built.

    Returns:
        ``block(x)``.
    """
    if with_cp and torch.is_grad_enabled():
        return checkpoint(block, x, use_reentrant=False)
    return block(x)
