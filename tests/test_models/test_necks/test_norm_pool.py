"""NormPoolNeck: Twins' norm-then-pool and DaViT's pool-then-norm."""
import pytest
import torch

from mmtwins.models.necks import NormPoolNeck
from mmtwins.registry import MODELS


def make_neck(order, eps):
    torch.manual_seed(0)
    neck = NormPoolNeck(6, order=order, eps=eps)
    with torch.no_grad():
        neck.norm.weight.uniform_(0.5, 1.5)
        neck.norm.bias.uniform_(-1, 1)
    return neck


def test_norm_then_pool():
    neck = make_neck('norm_pool', 1e-6)
    x = torch.randn(2, 6, 3, 5)
    tokens = x.flatten(2).transpose(1, 2)
    expected = torch.nn.functional.layer_norm(
        tokens, (6, ), neck.norm.weight, neck.norm.bias, 1e-6).mean(1)
    out, = neck((torch.randn(2, 4, 1, 1), x))  # uses the last map
    torch.testing.assert_close(out, expected)
    assert neck.norm.eps == 1e-6


def test_pool_then_norm():
    neck = make_neck('pool_norm', 1e-5)
    x = torch.randn(2, 6, 3, 5)
    expected = torch.nn.functional.layer_norm(
        x.mean((2, 3)), (6, ), neck.norm.weight, neck.norm.bias, 1e-5)
    torch.testing.assert_close(neck(x)[0], expected)
    assert (neck(x)[0] - make_neck('norm_pool', 1e-5)(x)[0]).abs().max() > 1e-3


def test_registered_and_validated():
    neck = MODELS.build(dict(type='NormPoolNeck', in_channels=4))
    assert isinstance(neck, NormPoolNeck) and neck.order == 'norm_pool'
    with pytest.raises(ValueError, match="order='mean' is not one of"):
        NormPoolNeck(4, order='mean')
