"""ConvPositionEncoding is x + depthwise conv3x3(x), the sum folded into the kernel in fp32."""
import torch
import torch.nn.functional as F

from mmtwins.models.layers import ConvPositionEncoding, position_encoding


def plain_position_encoding(pos, x):
    nchw = x.permute(0, 3, 1, 2)
    return x + F.conv2d(nchw, pos.proj.weight, pos.proj.bias, padding=1,
                        groups=pos.proj.groups).permute(0, 2, 3, 1)


def test_adds_a_depthwise_convolution():
    torch.manual_seed(0)
    pos = ConvPositionEncoding(6)
    assert pos.proj.groups == 6 and pos.proj.bias is not None
    x = torch.randn(2, 5, 7, 6)
    nchw = x.permute(0, 3, 1, 2).contiguous()
    expected = nchw + F.conv2d(nchw, pos.proj.weight, pos.proj.bias, padding=1, groups=6)
    torch.testing.assert_close(pos(x), expected.permute(0, 2, 3, 1))


def test_folded_sum_has_the_gradients_of_the_plain_sum():
    torch.manual_seed(0)
    pos = ConvPositionEncoding(6)
    x = torch.randn(2, 5, 7, 6, requires_grad=True)
    grad = torch.randn(2, 5, 7, 6)
    inputs = (x, pos.proj.weight, pos.proj.bias)
    folded = torch.autograd.grad(pos(x), inputs, grad)
    plain = torch.autograd.grad(plain_position_encoding(pos, x), inputs, grad)
    for folded_grad, plain_grad in zip(folded, plain):
        torch.testing.assert_close(folded_grad, plain_grad)


def test_plain_sum_under_autocast(monkeypatch):
    # Folded into bf16 taps, 1 + w would lose all but about two digits of w.
    torch.manual_seed(0)
    pos = ConvPositionEncoding(6)
    x = torch.randn(2, 5, 7, 6)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert torch.equal(pos(x), plain_position_encoding(pos, x))
        monkeypatch.setattr(position_encoding, 'can_fuse', lambda x: True)
        assert not torch.equal(pos(x), plain_position_encoding(pos, x))
