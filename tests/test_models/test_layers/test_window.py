"""Window partition/reverse and the padded-key mask."""
import pytest
import torch

from mmtwins.models.layers import window_key_mask, window_partition, window_reverse


def test_partition_reverse_round_trip():
    x = torch.rand(2, 14, 21, 5)
    windows = window_partition(x, 7)
    assert windows.shape == (12, 49, 5)
    # Window (row 1, column 2) of image 1 holds the matching 7x7 crop, row-major.
    torch.testing.assert_close(windows[1 * 6 + 1 * 3 + 2],
                               x[1, 7:14, 14:21].reshape(49, 5))
    assert torch.equal(window_reverse(windows.unsqueeze(1), 7, 14, 21), x)


def test_reverse_merges_heads_like_a_transpose():
    heads = torch.rand(12, 3, 49, 4)  # (windows, heads, tokens, head_dim)
    merged = heads.transpose(1, 2).flatten(2).unsqueeze(1)
    assert torch.equal(window_reverse(heads, 7, 14, 21),
                       window_reverse(merged, 7, 14, 21))


# Heights and widths with both pads, only one pad (where the references' mask, built
# with ``mask[:, -pad:]``, marks the whole map), and none.
@pytest.mark.parametrize('height,width', [(10, 13), (14, 10), (10, 14), (14, 14), (1, 8)])
def test_key_mask_marks_exactly_rows_and_columns_beyond_the_map(height, width):
    size = 7
    mask = window_key_mask(height, width, size, torch.device('cpu'))
    padded_height, padded_width = height + -height % size, width + -width % size
    rows = torch.arange(padded_height)[:, None].expand(padded_height, padded_width)
    cols = torch.arange(padded_width)[None, :].expand(padded_height, padded_width)
    coords = torch.stack([rows, cols], -1)[None]
    window_coords = window_partition(coords, size)  # (windows, 49, 2)
    expected = (window_coords[..., 0] < height) & (window_coords[..., 1] < width)
    assert mask.dtype == torch.bool
    assert mask.shape == (expected.shape[0], 1, 1, size * size)
    assert torch.equal(mask[:, 0, 0], expected)
    assert mask.sum() == height * width
