"""ConvPositionEncoding is x + depthwise conv3x3(x)."""
import torch
import torch.nn.functional as F

from mmtwins.models.layers import ConvPositionEncoding


def test_adds_a_depthwise_convolution():
    torch.manual_seed(0)
    pos = ConvPositionEncoding(6)
    assert pos.proj.groups == 6 and pos.proj.bias is not None
    x = torch.randn(2, 5, 7, 6)
    nchw = x.permute(0, 3, 1, 2).contiguous()
    expected = nchw + F.conv2d(nchw, pos.proj.weight, pos.proj.bias, padding=1, groups=6)
    torch.testing.assert_close(pos(x), expected.permute(0, 2, 3, 1))
