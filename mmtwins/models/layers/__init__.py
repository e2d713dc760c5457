"""Bricks shared by the Twins and DaViT backbones."""
from .attention import WINDOW_PADDINGS, MultiheadAttention, WindowAttention
from .backbone import PyramidBackbone, check_out_indices, check_rates
from .block import TransformerBlock, run_block
from .mlp import Mlp
from .patch_embed import PatchEmbed
from .position_encoding import ConvPositionEncoding
from .window import window_key_mask, window_partition, window_reverse

__all__ = [
    'WINDOW_PADDINGS', 'ConvPositionEncoding', 'Mlp', 'MultiheadAttention',
    'PatchEmbed', 'PyramidBackbone', 'TransformerBlock', 'WindowAttention',
    'check_out_indices', 'check_rates', 'run_block', 'window_key_mask',
    'window_partition', 'window_reverse'
]
