"""The classifier neck: LayerNorm and global average pooling, in either order."""
from typing import Sequence, Tuple, Union

from mmengine.model import BaseModule
from torch import Tensor, nn

from mmtwins.registry import MODELS

ORDERS = ('norm_pool', 'pool_norm')


@MODELS.register_module()
class NormPoolNeck(BaseModule):
    """Turns the last NCHW map into one normalised vector per image.

    The two families differ in order, and the trained weights depend on it:
    Twins normalises every token, then averages (``order='norm_pool'``, LayerNorm
    eps 1e-6); DaViT averages, then normalises (``order='pool_norm'``, eps 1e-5).

    Args:
        in_channels: Channels C of the last map.
        order: ``'norm_pool'`` or ``'pool_norm'``.
        eps: LayerNorm epsilon.
        init_cfg: mmengine ``init_cfg``; the LayerNorm starts at weight 1, bias 0.

    Example:
        >>> import torch
        >>> neck = NormPoolNeck(768, order='pool_norm', eps=1e-5)  # DaViT-T
        >>> neck((torch.rand(2, 768, 7, 7), ))[0].shape
        torch.Size([2, 768])
    """

    def __init__(self,
                 in_channels: int,
                 order: str = 'norm_pool',
                 eps: float = 1e-6,
                 init_cfg: Union[dict, list, None] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if order not in ORDERS:
            raise ValueError(f'order={order!r} is not one of {ORDERS}')
        self.order = order
        self.norm = nn.LayerNorm(in_channels, eps=eps)

    def forward(self, inputs: Union[Tensor, Sequence[Tensor]]) -> Tuple[Tensor]:
        """Normalises and pools the last map (or pools, then normalises).

        Args:
            inputs: A ``(B, C, H, W)`` map or a sequence ending with one.

        Returns:
            A one-tuple with the ``(B, C)`` features (the layout heads expect).
        """
        x = inputs if isinstance(inputs, Tensor) else inputs[-1]
        if self.order == 'norm_pool':
            return (self.norm(x.flatten(2).transpose(1, 2)).mean(1), )
        return (self.norm(x.mean((2, 3))), )
