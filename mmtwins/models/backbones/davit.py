"""DaViT backbone.

DaViT: Dual Attention Vision Transformers (Ding et al., ECCV 2022,
https://arxiv.org/abs/2204.03645).

Each stage: a patch embedding (a 7x7 stride-4 stem, or LayerNorm + 2x2 stride-2
downsampling), then DaViT blocks, each a spatial (window attention) block followed by
a channel (attention across channels) block; both have a convolutional position
encoding before each of their two residual branches.
"""
from typing import Optional, Sequence, Union

import torch.nn.functional as F
from torch import Tensor, nn

from mmtwins.registry import MODELS
from ..layers import (MultiheadAttention, PatchEmbed, TransformerBlock, WindowAttention,
                      run_block)
from .base_backbone import (PyramidBackbone, check_rates, drop_path_schedule,
                            init_linear_and_norm)


class ChannelAttention(MultiheadAttention):
    """Attention between the channels of each head, over all tokens.

    With per-head ``q, k, v`` of shape ``(N, d)``: ``A = softmax((k * d**-0.5)^T v)``
    is ``d x d`` and the output is ``(A q^T)^T``, the order the released weights
    were trained with (queries are what the channel mixing is applied to).

    Args:
        embed_dims: Channels C.
        num_heads: Number of heads (channel groups).
        qkv_bias: Whether ``qkv`` has a bias.
        attn_drop: Dropout on ``A`` (training only).
        proj_drop: Dropout after the output projection.

    Example:
        >>> import torch
        >>> ChannelAttention(96, num_heads=3)(torch.rand(2, 7, 9, 96)).shape
        torch.Size([2, 7, 9, 96])
    """

    def forward(self, x: Tensor, residual: Optional[Tensor] = None) -> Tensor:
        """Attends over the map.

        Args:
            x: ``(B, H, W, C)`` tokens.
            residual: Added to the output if given (the block's residual sum, fused
                into the output projection).

        Returns:
            ``(B, H, W, C)``.
        """
        return self.forward_map(x, residual=residual)

    def attend(self,
               q: Tensor,
               k: Tensor,
               v: Tensor,
               attn_mask: Optional[Tensor] = None) -> Tensor:
        """``(B, heads, N, d)`` inputs -> ``(B, heads, N, d)``; no mask applies."""
        attn = ((k * self.scale).transpose(-2, -1) @ v).softmax(dim=-1)
        attn = F.dropout(attn, self.attn_drop, self.training)
        return q @ attn.transpose(-2, -1)


class DaViTBlock(nn.Module):
    """A spatial block then a channel block (one entry of ``depths``).

    Args:
        spatial: The window-attention block.
        channel: The channel-attention block.
    """

    def __init__(self, spatial: TransformerBlock, channel: TransformerBlock) -> None:
        super().__init__()
        self.spatial = spatial
        self.channel = channel

    def forward(self, x: Tensor) -> Tensor:
        """The spatial block, then the channel block.

        Args:
            x: ``(B, H, W, C)`` tokens.

        Returns:
            ``(B, H, W, C)``.
        """
        return self.channel(self.spatial(x))


class DaViTStage(nn.Module):
    """Patch embedding then DaViT blocks.

    Args:
        patch_embed: Maps NCHW input to ``(B, H, W, C)`` tokens.
        blocks: The stage's :class:`DaViTBlock` s.
        out_norm: A LayerNorm for the returned map only (not fed forward), or None.
        with_cp: Gradient checkpointing of each DaViT block.
    """

    def __init__(self, patch_embed: PatchEmbed, blocks: Sequence[DaViTBlock],
                 out_norm: Optional[nn.LayerNorm], with_cp: bool) -> None:
        super().__init__()
        self.patch_embed = patch_embed
        self.blocks = nn.ModuleList(blocks)
        self.out_norm = out_norm
        self.with_cp = with_cp

    def forward(self, x: Tensor) -> Tensor:
        """Embeds the patches, then runs the blocks.

        Args:
            x: ``(B, C_in, H, W)``.

        Returns:
            ``(B, H', W', C)`` tokens.
        """
        x = self.patch_embed(x)
        for block in self.blocks:
            x = run_block(block, x, self.with_cp)
        return x


@MODELS.register_module()
class DaViT(PyramidBackbone):
    """DaViT: window attention and channel attention, alternating.

    Args:
        arch: ``'t'``/``'tiny'``, ``'s'``/``'small'``, ``'b'``/``'base'``,
            ``'l'``/``'large'``, ``'h'``/``'huge'``, ``'g'``/``'giant'``, or a dict
            of per-stage sequences ``embed_dims``, ``depths`` (DaViT blocks, each
            a spatial and a channel block) and ``num_heads``.
        in_channels: Input image channels.
        out_indices: Stages whose NCHW maps are returned (strides 4, 8, 16, 32);
            negative indices count from the end. Default: the last stage.
        window_size: Side of the spatial attention windows.
        window_padding: How window attention treats a map that is not a multiple
            of the window, padded bottom/right: ``'mask'`` (default) keeps padded
            tokens out of the keys; ``'zero'`` lets them take part as zero tokens,
            as the official model and timm do.
        mlp_ratio: MLP hidden channels over C.
        qkv_bias: Bias in the query/key/value projections.
        drop_rate: Dropout after each attention projection and MLP layer (the
            released models use none).
        attn_drop_rate: Dropout on the attention weights.
        drop_path_rate: Stochastic depth, rising linearly from 0 over the spatial
            and channel blocks in order (``linspace(0, rate, 2 * sum(depths))``,
            as official).
        norm_outputs: A LayerNorm on every returned map, not fed to the next
            stage (official dense models).
        frozen_stages: -1: none; 0: the stem; k: the stem and stages 0..k-1.
        norm_eval: Keep normalisation layers in eval mode while training.
        with_cp: Gradient checkpointing of every DaViT block.
        init_cfg: mmengine ``init_cfg``. The official initialisation (truncated
            normal .02 for Linear, LayerNorm 1/0, convolutions PyTorch's default)
            runs when it is None or only ``Pretrained`` (which then loads over
            it).

    Input sizes: any H, W >= 1; the stem pads to a multiple of 4 and each
    downsampling to an even size, so the maps are ``ceil(H / 4) x ceil(W / 4)``,
    then halved (ceil).

    Example:
        >>> import torch
        >>> from mmtwins.registry import MODELS
        >>> model = MODELS.build(dict(type='DaViT', arch='tiny',
        ...                           out_indices=(0, 1, 2, 3), norm_outputs=True))
        >>> [tuple(m.shape) for m in model(torch.rand(1, 3, 97, 131))]
        [(1, 96, 25, 33), (1, 192, 13, 17), (1, 384, 7, 9), (1, 768, 4, 5)]
    """

    arch_keys = ('embed_dims', 'depths', 'num_heads')
    arch_zoo = {
        **dict.fromkeys(['t', 'tiny'], dict(
            embed_dims=(96, 192, 384, 768), depths=(1, 1, 3, 1),
            num_heads=(3, 6, 12, 24))),
        **dict.fromkeys(['s', 'small'], dict(
            embed_dims=(96, 192, 384, 768), depths=(1, 1, 9, 1),
            num_heads=(3, 6, 12, 24))),
        **dict.fromkeys(['b', 'base'], dict(
            embed_dims=(128, 256, 512, 1024), depths=(1, 1, 9, 1),
            num_heads=(4, 8, 16, 32))),
        **dict.fromkeys(['l', 'large'], dict(
            embed_dims=(192, 384, 768, 1536), depths=(1, 1, 9, 1),
            num_heads=(6, 12, 24, 48))),
        **dict.fromkeys(['h', 'huge'], dict(
            embed_dims=(256, 512, 1024, 2048), depths=(1, 1, 9, 1),
            num_heads=(8, 16, 32, 64))),
        **dict.fromkeys(['g', 'giant'], dict(
            embed_dims=(384, 768, 1536, 3072), depths=(1, 1, 12, 3),
            num_heads=(12, 24, 48, 96))),
    }
    official_init = staticmethod(init_linear_and_norm)

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = -1,
                 window_size: int = 7,
                 window_padding: str = 'mask',
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 norm_outputs: bool = False,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg: Union[dict, list, None] = None) -> None:
        super().__init__(arch, in_channels, out_indices, frozen_stages,
                         norm_eval, with_cp, init_cfg)
        check_rates(drop_rate=drop_rate, attn_drop_rate=attn_drop_rate,
                    drop_path_rate=drop_path_rate)
        settings = self.arch_settings
        attn_kwargs = dict(
            qkv_bias=qkv_bias, attn_drop=attn_drop_rate, proj_drop=drop_rate)
        drop_path_rates = drop_path_schedule(drop_path_rate, 2 * sum(settings['depths']))

        def sub_block(attn: nn.Module, dims: int) -> TransformerBlock:
            return TransformerBlock(
                dims,
                attn,
                mlp_ratio=mlp_ratio,
                drop_rate=drop_rate,
                drop_path_rate=next(drop_path_rates),
                with_cpe=True)

        self.stages = nn.ModuleList()
        for stage, depth in enumerate(settings['depths']):
            dims, heads = settings['embed_dims'][stage], settings['num_heads'][stage]
            blocks = [
                DaViTBlock(
                    sub_block(
                        WindowAttention(dims, heads, window_size,
                                        window_padding, **attn_kwargs), dims),
                    sub_block(ChannelAttention(dims, heads, **attn_kwargs), dims))
                for _ in range(depth)
            ]
            self.stages.append(
                DaViTStage(
                    self._patch_embed(stage),
                    blocks,
                    out_norm=nn.LayerNorm(dims) if norm_outputs
                    and stage in self.out_indices else None,
                    with_cp=with_cp))
        self._freeze_stages()

    def _patch_embed(self, stage: int) -> PatchEmbed:
        """The stem for stage 0, else the LayerNorm + 2x2 downsampling."""
        dims = self.arch_settings['embed_dims']
        if stage == 0:
            return PatchEmbed(self.in_channels, dims[0], 7, stride=4, padding=3)
        return PatchEmbed(dims[stage - 1], dims[stage], 2, norm_first=True)

    def output_map(self, index: int, x: Tensor) -> Tensor:
        """Applies the stage's output LayerNorm, if any, to its NCHW map."""
        norm = self.stages[index].out_norm
        if norm is None:
            return x
        return norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
