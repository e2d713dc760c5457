"""Convolutional position encoding (Twins' PEG, DaViT's CPE)."""
from torch import Tensor, nn

from .fused import can_fuse


class ConvPositionEncoding(nn.Module):
    """``x + DepthwiseConv(x)``: position information from the zero-padded border.

    Args:
        embed_dims: Channels C.
        kernel_size: Odd side of the depthwise kernel (stride 1, same padding).

    Example:
        >>> import torch
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
        """Adds the position encoding.

        Args:
            x: ``(B, H, W, C)`` tokens.

        Returns:
            ``(B, H, W, C)``.
        """
        # The NCHW view of channels-last tokens is a channels_last tensor: the
        # convolution reads and writes it without any layout copy.
        nchw = x.permute(0, 3, 1, 2)
        if not can_fuse(x):
            return x + self.proj(nchw).permute(0, 2, 3, 1)
        # The sum in the convolution, one pass over the map rather than two: a 1
        # added to each kernel's centre tap adds x. Only in fp32: rounding
        # ``1 + w`` to bf16 or TF32 would coarsen the taps to steps of 2**-8 or 2**-11.
        return self.proj._conv_forward(nchw, self._weight_plus_identity(),
                                       self.proj.bias).permute(0, 2, 3, 1)

    def _weight_plus_identity(self) -> Tensor:
        weight = self.proj.weight
        centre = self.proj.kernel_size[0] // 2
        identity = weight.new_zeros(weight.shape[-2:])
        identity[centre, centre] = 1
        return weight + identity
