"""Inputs smaller than an arch can take get an error naming the sizes; others run."""
import pytest
import torch

from mmtwins.models.backbones import DaViT, TwinsPCPVT, TwinsSVT
from tests.helpers import TINY_DAVIT, TINY_SVT


def test_twins_needs_each_map_to_span_its_key_subsampling():
    backbone = TwinsSVT(arch=TINY_SVT, out_indices=(0, 1, 2, 3)).eval()
    # sr ratios (8, 4, 2, 1): stage 0's map, ceil(side / 4) tokens, must reach 8.
    assert backbone.min_input_size == 29
    with pytest.raises(ValueError, match=r'at least 29 x 29 pixels.*got 28 x 40'):
        backbone(torch.rand(1, 3, 28, 40))
    maps = backbone(torch.rand(1, 3, 29, 33))
    assert [tuple(m.shape[-2:]) for m in maps] == [(8, 9), (4, 5), (2, 3), (1, 2)]


def test_the_minimum_follows_the_arch():
    # Three stages of sr ratios (4, 2, 1): stage 0 needs 4 tokens (13 pixels), stage 1 2.
    arch = dict(embed_dims=(8, 16, 32), depths=(1, 1, 1), num_heads=(1, 1, 1),
                mlp_ratios=(2, 2, 2), sr_ratios=(4, 2, 1))
    backbone = TwinsPCPVT(arch=arch, out_indices=(0, 1, 2)).eval()
    assert backbone.min_input_size == 13
    assert [tuple(m.shape[-2:]) for m in backbone(torch.rand(1, 3, 13, 13))] == \
        [(4, 4), (2, 2), (1, 1)]
    with pytest.raises(ValueError, match='at least 13 x 13 pixels.*got 12 x 13'):
        backbone(torch.rand(1, 3, 12, 13))


@pytest.mark.parametrize('side', [1, 5, 24])
def test_davit_takes_any_size(side):
    backbone = DaViT(arch=TINY_DAVIT, out_indices=(0, 3)).eval()
    first, last = backbone(torch.rand(1, 3, side, side + 3))
    assert first.shape[-2:] == (-(-side // 4), -(-(side + 3) // 4))
    assert last.shape[-2:] == (1, 1)
