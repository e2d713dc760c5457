"""oneDNN-fused linear layers: same results as the plain path, used only where valid."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmtwins.models.layers import Mlp, TransformerBlock, WindowAttention
from mmtwins.models.layers.fused import can_fuse, fused_linear


@pytest.mark.parametrize('bias', [True, False])
def test_fused_linear_matches_plain(bias):
    torch.manual_seed(0)
    layer = nn.Linear(16, 24, bias=bias)
    x, residual = torch.randn(2, 5, 7, 16), torch.randn(2, 5, 7, 24)
    with torch.inference_mode():
        plain = F.linear(x, layer.weight, layer.bias)
        torch.testing.assert_close(fused_linear(x, layer.weight, layer.bias), plain)
        torch.testing.assert_close(
            fused_linear(x, layer.weight, layer.bias, gelu=True), F.gelu(plain))
        torch.testing.assert_close(
            fused_linear(x, layer.weight, layer.bias, residual=residual), residual + plain)
    with pytest.raises(ValueError, match='not both'):
        fused_linear(x, layer.weight, gelu=True, residual=residual)


def test_can_fuse_only_for_fp32_cpu_inference_without_autograd():
    layer, x = nn.Linear(8, 8), torch.randn(2, 8)
    assert not can_fuse(x, layer)  # training mode: dropout and drop path are live
    layer.eval()
    assert not can_fuse(x, layer)  # autograd records the parameters
    with torch.no_grad():
        assert can_fuse(x, layer)
        assert not can_fuse(x.double(), layer)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            assert not can_fuse(x, layer)
    layer.requires_grad_(False)
    assert can_fuse(x, layer)
    assert not can_fuse(x.requires_grad_(), layer)


@pytest.mark.parametrize('height, width', [(6, 9), (5, 7)])  # padded windows, or not
def test_block_inference_equals_its_autograd_path(height, width):
    torch.manual_seed(0)
    block = TransformerBlock(8, WindowAttention(8, 2, window_size=3), mlp_ratio=3,
                             with_cpe=True).eval()
    x = torch.randn(2, height, width, 8)
    with torch.inference_mode():
        fused = block(x)
    torch.testing.assert_close(fused, block(x).detach())


def test_mlp_adds_the_residual_after_its_dropout():
    torch.manual_seed(0)
    mlp, x, residual = Mlp(4, 8, drop=0.5).train(), torch.randn(3, 4), torch.randn(3, 4)
    torch.manual_seed(1)
    out = mlp(x, residual=residual)
    torch.manual_seed(1)
    torch.testing.assert_close(out, residual + mlp(x))
