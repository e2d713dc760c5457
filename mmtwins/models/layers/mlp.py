"""The transformer feed-forward network."""
from typing import Optional

from torch import Tensor, nn

from .fused import can_fuse, fused_linear, linear_dropout_residual


class Mlp(nn.Module):
    """``Linear -> GELU -> Dropout -> Linear -> Dropout`` on the last dimension.

    Args:
        embed_dims: Input and output channels.
        hidden_dims: Hidden channels.
        drop: Dropout probability after the activation and after ``fc2``.

    Example:
        >>> import torch
        >>> Mlp(64, 256)(torch.rand(2, 7, 7, 64)).shape
        torch.Size([2, 7, 7, 64])
    """

    def __init__(self, embed_dims: int, hidden_dims: int, drop: float = 0.) -> None:
        super().__init__()
        if hidden_dims < 1:
            raise ValueError(f'an MLP of {embed_dims} channels needs at least one hidden '
                             f'channel, got hidden_dims={hidden_dims!r} (check mlp_ratio)')
        self.fc1 = nn.Linear(embed_dims, hidden_dims)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dims, embed_dims)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor, residual: Optional[Tensor] = None) -> Tensor:
        """Runs the MLP on the last dimension.

        Args:
            x: ``(..., C)``.
            residual: Added to the output if given (the block's residual sum, fused
                into ``fc2``).

        Returns:
            ``(..., C)``.
        """
        if can_fuse(x) and not (self.training and self.drop.p):
            hidden = fused_linear(x, self.fc1.weight, self.fc1.bias, gelu=True)
        else:
            hidden = self.drop(self.act(self.fc1(x)))
        return linear_dropout_residual(hidden, self.fc2, self.drop, residual)
