"""Non-overlapping square windows of a channels-last token map, and their key mask."""
import torch
from torch import Tensor


def window_partition(x: Tensor, window_size: int) -> Tensor:
    """Cuts a map into windows, each a short token sequence.

    Args:
        x: ``(B, H, W, C)`` with H and W multiples of ``window_size``.
        window_size: Side of the square windows.

    Returns:
        ``(B * num_windows, window_size**2, C)``, windows in row-major order.

    Example:
        >>> window_partition(torch.rand(2, 14, 21, 8), 7).shape
        torch.Size([12, 49, 8])
    """
    batch, height, width, channels = x.shape
    rows, cols = height // window_size, width // window_size
    return x.view(batch, rows, window_size, cols, window_size,
                  channels).transpose(2, 3).reshape(-1, window_size**2, channels)


def window_reverse(windows: Tensor, window_size: int, height: int,
                   width: int) -> Tensor:
    """Inverse of :func:`window_partition` that also merges attention heads.

    Args:
        windows: ``(B * num_windows, heads, window_size**2, head_dim)``, the
            layout of attention outputs; ``windows.unsqueeze(1)`` for plain windows.
        window_size: Side of the square windows.
        height: Height of the (padded) map, a multiple of ``window_size``.
        width: Width of the (padded) map, a multiple of ``window_size``.

    Returns:
        ``(B, height, width, heads * head_dim)``, in one copy.

    Example:
        >>> x = torch.rand(2, 14, 21, 8)
        >>> windows = window_partition(x, 7).unsqueeze(1)
        >>> torch.equal(window_reverse(windows, 7, 14, 21), x)
        True
    """
    _, heads, _, head_dims = windows.shape
    rows, cols = height // window_size, width // window_size
    return windows.view(-1, rows, cols, heads, window_size, window_size,
                        head_dims).permute(0, 1, 4, 2, 5, 3, 6).reshape(
                            -1, height, width, heads * head_dims)


def window_key_mask(height: int, width: int, window_size: int,
                    device: torch.device) -> Tensor:
    """Which keys of each window are real tokens of a map padded right and bottom.

    A token is padding exactly when its row is ``>= height`` or its column is
    ``>= width``; every window keeps at least its top-left token.

    Args:
        height: Height of the map before padding.
        width: Width of the map before padding.
        window_size: Side of the square windows.
        device: Where to build the mask.

    Returns:
        Boolean ``(num_windows, 1, 1, window_size**2)``, True for real tokens: an
        ``attn_mask`` for queries ``(num_windows, heads, window_size**2, head_dim)``.

    Example:
        >>> window_key_mask(5, 9, 7, 'cpu').sum(-1).flatten().tolist()
        [35, 10]
    """
    padded_height = height + -height % window_size
    padded_width = width + -width % window_size
    rows = torch.arange(padded_height, device=device) < height
    cols = torch.arange(padded_width, device=device) < width
    real = (rows[:, None] & cols[None, :])[None, :, :, None]
    return window_partition(real, window_size).view(-1, 1, 1, window_size**2)
