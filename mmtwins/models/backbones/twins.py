"""Twins-PCPVT and Twins-SVT backbones.

Twins: Revisiting the Design of Spatial Attention in Vision Transformers
(Chu et al., NeurIPS 2021, https://arxiv.org/abs/2104.13840).

Each stage: patch embedding, dropout, pre-norm blocks with a convolutional position
encoding (PEG) after the first block, and optionally a LayerNorm. PCPVT blocks all
use global sub-sampled attention (GSA); SVT blocks alternate locally-grouped window
attention (LSA, even indices) and GSA (odd indices).
"""
import inspect
import math
from typing import List, Optional, Sequence, Union

from torch import Tensor, nn

from mmtwins.registry import MODELS
from ..layers import (ConvPositionEncoding, MultiheadAttention, PatchEmbed,
                      TransformerBlock, WindowAttention, run_block)
from .base_backbone import (PyramidBackbone, check_rates, drop_path_schedule,
                            init_linear_and_norm)

BLOCK_NORM_EPS = 1e-6


class GlobalSubsampledAttention(MultiheadAttention):
    """GSA: every token attends to a ``sr_ratio``-times sub-sampled copy of the map.

    Keys and values come from ``LayerNorm(Conv2d(k=s=sr_ratio)(x))`` (a strided
    convolution: a map side that is not a multiple of ``sr_ratio`` loses its last
    rows/columns there, as in the official model); with ``sr_ratio == 1`` this is
    plain global self-attention with one fused ``qkv`` product.

    Args:
        embed_dims: Channels C.
        num_heads: Number of heads.
        sr_ratio: Spatial reduction of keys and values.
        **kwargs: ``qkv_bias``, ``attn_drop``, ``proj_drop`` of
            :class:`~mmtwins.models.layers.MultiheadAttention`.

    Example:
        >>> import torch
        >>> attn = GlobalSubsampledAttention(64, num_heads=1, sr_ratio=8)
        >>> attn(torch.rand(2, 25, 33, 64)).shape
        torch.Size([2, 25, 33, 64])
    """

    def __init__(self, embed_dims: int, num_heads: int, sr_ratio: int = 1,
                 **kwargs) -> None:
        super().__init__(embed_dims, num_heads, **kwargs)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(embed_dims, embed_dims, sr_ratio, sr_ratio)
            self.norm = nn.LayerNorm(embed_dims)
        else:
            self.sr = None

    def forward(self, x: Tensor, residual: Optional[Tensor] = None) -> Tensor:
        """Attends over the map.

        Args:
            x: ``(B, H, W, C)`` tokens.
            residual: Added to the output if given (the block's residual sum, fused
                into the output projection).

        Returns:
            ``(B, H, W, C)``.
        """
        if self.sr is None:
            return self.forward_map(x, residual=residual)
        context = self.sr(x.permute(0, 3, 1, 2)).flatten(2).transpose(1, 2)
        return self.forward_map(x, self.norm(context), residual=residual)


class TwinsStage(nn.Module):
    """Patch embedding, dropout, blocks (the PEG after the first), optional norm.

    Args:
        patch_embed: Maps NCHW input to ``(B, H, W, C)`` tokens.
        blocks: The stage's blocks, at least one.
        drop_rate: Dropout after the patch embedding.
        norm_after_stage: LayerNorm the output (it feeds the next stage too).
        with_cp: Gradient checkpointing of each block.
    """

    def __init__(self, patch_embed: PatchEmbed, blocks: Sequence[nn.Module],
                 drop_rate: float, norm_after_stage: bool, with_cp: bool) -> None:
        super().__init__()
        embed_dims = patch_embed.proj.out_channels
        self.patch_embed = patch_embed
        self.drop = nn.Dropout(drop_rate)
        self.blocks = nn.ModuleList(blocks)
        self.pos_enc = ConvPositionEncoding(embed_dims)
        self.norm = nn.LayerNorm(
            embed_dims, eps=BLOCK_NORM_EPS) if norm_after_stage else nn.Identity()
        self.with_cp = with_cp

    def forward(self, x: Tensor) -> Tensor:
        """Embeds the patches, then runs the blocks.

        Args:
            x: ``(B, C_in, H, W)``.

        Returns:
            ``(B, H', W', C)`` tokens.
        """
        x = self.drop(self.patch_embed(x))
        for index, block in enumerate(self.blocks):
            x = run_block(block, x, self.with_cp)
            if index == 0:
                x = self.pos_enc(x)
        return self.norm(x)


def init_twins_weights(module: nn.Module) -> None:
    """The official Twins initialisation of one module (use with ``apply``): DaViT's,
    and convolutions normal with std ``sqrt(2 / fan_out)``, fan_out divided by the
    groups."""
    if not isinstance(module, nn.Conv2d):
        init_linear_and_norm(module)
        return
    kernel_height, kernel_width = module.kernel_size
    fan_out = kernel_height * kernel_width * module.out_channels // module.groups
    nn.init.normal_(module.weight, 0, math.sqrt(2. / fan_out))
    if module.bias is not None:
        nn.init.zeros_(module.bias)


@MODELS.register_module()
class TwinsPCPVT(PyramidBackbone):
    """Twins-PCPVT: a pyramid of global sub-sampled attention (GSA) blocks.

    Args:
        arch: ``'s'``/``'small'``, ``'b'``/``'base'``, ``'l'``/``'large'``, or a
            dict of per-stage sequences ``embed_dims``, ``depths``, ``num_heads``,
            ``mlp_ratios``, ``sr_ratios`` (the first stage embeds 4x4 patches, the
            others 2x2).
        in_channels: Input image channels.
        out_indices: Stages whose NCHW maps are returned (strides 4, 8, 16, 32);
            negative indices count from the end. Default: the last stage.
        qkv_bias: Bias in the query/key/value projections.
        drop_rate: Dropout after each patch embedding, attention projection and
            MLP layer.
        attn_drop_rate: Dropout on the attention weights.
        drop_path_rate: Stochastic depth, rising linearly over all blocks from 0.
        norm_after_stage: A LayerNorm (eps 1e-6) after every stage, or one bool
            per stage; its output also feeds the next stage (official dense SVT).
            Classifiers normalise in the neck instead
            (:class:`~mmtwins.models.necks.NormPoolNeck`).
        frozen_stages: -1: none; 0: the stem; k: the stem and stages 0..k-1.
        norm_eval: Keep normalisation layers in eval mode while training.
        with_cp: Gradient checkpointing of every block.
        init_cfg: mmengine ``init_cfg``. The official initialisation (truncated
            normal .02 for Linear, LayerNorm 1/0, Conv2d normal with std
            sqrt(2 / fan_out), fan_out divided by the groups) runs when it is
            None or only ``Pretrained`` (which then loads over it).

    Input sizes: any H, W >= 29 with the released sr ratios (8, 4, 2, 1), in
    general :attr:`min_input_size`; each patch embedding pads bottom/right to its
    stride, so the maps are ``ceil(H / 4) x ceil(W / 4)``, then halved (ceil).

    Example:
        >>> import torch
        >>> from mmtwins.registry import MODELS
        >>> model = MODELS.build(dict(type='TwinsPCPVT', arch='small',
        ...                           out_indices=(0, 1, 2, 3)))
        >>> [tuple(m.shape) for m in model(torch.rand(1, 3, 224, 224))]
        [(1, 64, 56, 56), (1, 128, 28, 28), (1, 320, 14, 14), (1, 512, 7, 7)]
    """

    arch_keys = ('embed_dims', 'depths', 'num_heads', 'mlp_ratios', 'sr_ratios')
    official_init = staticmethod(init_twins_weights)
    arch_zoo = {
        **dict.fromkeys(['s', 'small'], dict(
            embed_dims=(64, 128, 320, 512), depths=(3, 4, 6, 3),
            num_heads=(1, 2, 5, 8), mlp_ratios=(8, 8, 4, 4),
            sr_ratios=(8, 4, 2, 1))),
        **dict.fromkeys(['b', 'base'], dict(
            embed_dims=(64, 128, 320, 512), depths=(3, 4, 18, 3),
            num_heads=(1, 2, 5, 8), mlp_ratios=(8, 8, 4, 4),
            sr_ratios=(8, 4, 2, 1))),
        **dict.fromkeys(['l', 'large'], dict(
            embed_dims=(64, 128, 320, 512), depths=(3, 8, 27, 3),
            num_heads=(1, 2, 5, 8), mlp_ratios=(8, 8, 4, 4),
            sr_ratios=(8, 4, 2, 1))),
    }

    def __init__(self,
                 arch: Union[str, dict] = 'small',
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = -1,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 norm_after_stage: Union[bool, Sequence[bool]] = False,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg: Union[dict, list, None] = None) -> None:
        super().__init__(arch, in_channels, out_indices, frozen_stages,
                         norm_eval, with_cp, init_cfg)
        if isinstance(norm_after_stage, bool):
            norm_after_stage = (norm_after_stage, ) * self.num_stages
        if not isinstance(norm_after_stage, Sequence) or len(
                norm_after_stage) != self.num_stages or not all(
                    isinstance(value, bool) for value in norm_after_stage):
            raise ValueError(f'norm_after_stage={norm_after_stage!r} must be a bool or '
                             f'one bool per stage ({self.num_stages})')
        check_rates(drop_rate=drop_rate, attn_drop_rate=attn_drop_rate,
                    drop_path_rate=drop_path_rate)
        settings = self.arch_settings
        attn_kwargs = dict(
            qkv_bias=qkv_bias, attn_drop=attn_drop_rate, proj_drop=drop_rate)
        drop_path_rates = drop_path_schedule(drop_path_rate, sum(settings['depths']))

        self.stages = nn.ModuleList()
        for stage, depth in enumerate(settings['depths']):
            dims = settings['embed_dims'][stage]
            blocks = [
                TransformerBlock(
                    dims,
                    self.block_attention(stage, block, **attn_kwargs),
                    mlp_ratio=settings['mlp_ratios'][stage],
                    drop_rate=drop_rate,
                    drop_path_rate=next(drop_path_rates),
                    norm_eps=BLOCK_NORM_EPS) for block in range(depth)
            ]
            patch_embed = PatchEmbed(
                settings['embed_dims'][stage - 1] if stage else in_channels,
                dims,
                kernel_size=2 if stage else 4)
            self.stages.append(
                TwinsStage(patch_embed, blocks, drop_rate,
                           norm_after_stage[stage], with_cp))
        self._freeze_stages()

    def block_attention(self, stage: int, block: int, **attn_kwargs) -> nn.Module:
        """The attention of a block: GSA in every PCPVT block.

        Args:
            stage: The stage index.
            block: The block index within the stage.
            **attn_kwargs: ``qkv_bias``, ``attn_drop`` and ``proj_drop``.
        """
        settings = self.arch_settings
        return GlobalSubsampledAttention(settings['embed_dims'][stage],
                                         settings['num_heads'][stage],
                                         settings['sr_ratios'][stage], **attn_kwargs)

    def stem_modules(self) -> List[nn.Module]:
        """The first patch embedding and the dropout after it."""
        return [self.stages[0].patch_embed, self.stages[0].drop]

    @property
    def min_input_size(self) -> int:
        """The smallest input side: stage i's map, ``ceil(side / 2**(i + 2))`` tokens,
        must span at least one window of its key sub-sampling (``sr_ratios[i]``)."""
        return max(2**(stage + 2) * (ratio - 1) + 1
                   for stage, ratio in enumerate(self.arch_settings['sr_ratios']))

    def check_input_size(self, height: int, width: int) -> None:
        """Raises a ``ValueError`` for a side below :attr:`min_input_size`."""
        if min(height, width) < self.min_input_size:
            raise ValueError(
                f'{type(self).__name__} with sr_ratios='
                f'{self.arch_settings["sr_ratios"]} takes inputs of at least '
                f'{self.min_input_size} x {self.min_input_size} pixels (each stage\'s map '
                f'must span its key sub-sampling), got {height} x {width}; resize or pad '
                f'the images first')


@MODELS.register_module()
class TwinsSVT(TwinsPCPVT):
    """Twins-SVT: blocks alternate window attention (LSA) and GSA, LSA first.

    Args:
        arch: ``'s'``/``'small'``, ``'b'``/``'base'``, ``'l'``/``'large'``, or a
            dict as for :class:`TwinsPCPVT`.
        window_size: Side of the LSA windows.
        window_padding: How LSA treats a map that is not a multiple of the
            window, padded bottom/right: ``'mask'`` (default) keeps padded
            tokens out of the keys; ``'zero'`` lets them take part as zero
            tokens, as timm and the official detection code do.
        **kwargs: The other arguments of :class:`TwinsPCPVT`.

    Example:
        >>> import torch
        >>> from mmtwins.registry import MODELS
        >>> model = MODELS.build(dict(type='TwinsSVT', arch='small',
        ...                           out_indices=(0, 1, 2, 3),
        ...                           norm_after_stage=True))
        >>> [tuple(m.shape) for m in model(torch.rand(1, 3, 97, 131))]
        [(1, 64, 25, 33), (1, 128, 13, 17), (1, 256, 7, 9), (1, 512, 4, 5)]
    """

    arch_zoo = {
        **dict.fromkeys(['s', 'small'], dict(
            embed_dims=(64, 128, 256, 512), depths=(2, 2, 10, 4),
            num_heads=(2, 4, 8, 16), mlp_ratios=(4, 4, 4, 4),
            sr_ratios=(8, 4, 2, 1))),
        **dict.fromkeys(['b', 'base'], dict(
            embed_dims=(96, 192, 384, 768), depths=(2, 2, 18, 2),
            num_heads=(3, 6, 12, 24), mlp_ratios=(4, 4, 4, 4),
            sr_ratios=(8, 4, 2, 1))),
        **dict.fromkeys(['l', 'large'], dict(
            embed_dims=(128, 256, 512, 1024), depths=(2, 2, 18, 2),
            num_heads=(4, 8, 16, 32), mlp_ratios=(4, 4, 4, 4),
            sr_ratios=(8, 4, 2, 1))),
    }

    def __init__(self,
                 arch: Union[str, dict] = 'small',
                 window_size: int = 7,
                 window_padding: str = 'mask',
                 **kwargs) -> None:
        unknown = kwargs.keys() - inspect.signature(TwinsPCPVT.__init__).parameters.keys()
        if unknown:  # else Python's TypeError names TwinsPCPVT.__init__
            raise TypeError(f'TwinsSVT got unexpected keyword arguments {sorted(unknown)}')
        # Set before the trunk is built, which reads them (block_attention).
        self.window_size = window_size
        self.window_padding = window_padding
        super().__init__(arch, **kwargs)

    def block_attention(self, stage: int, block: int, **attn_kwargs) -> nn.Module:
        """LSA in the even-indexed blocks, GSA (as in PCPVT) in the others."""
        if block % 2:
            return super().block_attention(stage, block, **attn_kwargs)
        return WindowAttention(self.arch_settings['embed_dims'][stage],
                               self.arch_settings['num_heads'][stage],
                               window_size=self.window_size,
                               window_padding=self.window_padding, **attn_kwargs)
