"""Bricks shared by the Twins and DaViT backbones."""
from .attention import WINDOW_PADDINGS, MultiheadAttention, WindowAttention
from .block import TransformerBlock, run_block
from .drop_path import ResidualDropPath
from .mlp import Mlp
from .patch_embed import PatchEmbed
from .position_encoding import ConvPositionEncoding
from .window import window_key_mask, window_partition, window_reverse

__all__ = [
    'WINDOW_PADDINGS', 'ConvPositionEncoding', 'Mlp', 'MultiheadAttention',
    'PatchEmbed', 'ResidualDropPath', 'TransformerBlock', 'WindowAttention',
    'run_block', 'window_key_mask', 'window_partition', 'window_reverse'
]
