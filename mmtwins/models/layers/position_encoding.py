"""Convolutional position encoding (Twins' PEG, DaViT's CPE)."""
from torch import Tensor, nn


class ConvPositionEncoding(nn.Module):
    """``x + DepthwiseConv(x)``: position information from the zero-padded border.

    Args:
        embed_dims: Channels C.
        kernel_size: Odd side of the depthwise kernel (stride 1, same padding).

    Example:
        >>> ConvPositionEncoding(64)(torch.rand(2, 7, 9, 64)).shape
        torch.Size([2, 7, 9, 64])
    """

    def __init__(self, embed_dims: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(
            embed_dims,
            embed_dims,
            kernel_size,
            padding=kernel_size // 2,
            groups=embed_dims)

    def forward(self, x: Tensor) -> Tensor:
        """Args: x: ``(B, H, W, C)``. Returns: ``(B, H, W, C)``."""
        # The NCHW view of channels-last tokens is a channels_last tensor: the
        # convolution reads and writes it without any layout copy.
        return x + self.proj(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
