"""Inputs smaller than the backbones accept get an error naming the sizes."""
import pytest
import torch

from mmtwins.models.backbones import DaViT, TwinsSVT
from tests.helpers import TINY_DAVIT, TINY_SVT


@pytest.mark.parametrize('backbone_class', [TwinsSVT, DaViT])
def test_inputs_below_32_pixels_get_a_clear_error(backbone_class):
    arch = TINY_SVT if backbone_class is TwinsSVT else TINY_DAVIT
    backbone = backbone_class(arch=arch).eval()
    with pytest.raises(ValueError, match='at least 32 x 32 pixels.*got 24 x 40'):
        backbone(torch.rand(1, 3, 24, 40))
    assert backbone(torch.rand(1, 3, 32, 33))[-1].shape[-2:] == (1, 2)
