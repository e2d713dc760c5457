"""Stochastic depth of residual branches, fused with the residual sum."""
import torch
from torch import Tensor, nn


class ResidualDropPath(nn.Module):
    """``residual + DropPath(x)``: stochastic depth of a residual branch, per sample.

    In training each sample keeps its branch with probability ``1 - drop_prob``,
    scaled by ``1 / (1 - drop_prob)``; the same random draws as mmcv's and timm's
    ``DropPath``, but the scaling and the sum are one ``addcmul`` over the branch
    rather than two or three elementwise passes.

    Args:
        drop_prob: Probability of dropping a sample's branch.

    Example:
        >>> drop = ResidualDropPath(0.2).train()
        >>> set(drop(torch.zeros(4, 3), torch.ones(4, 3)).flatten().tolist()) <= {0., 1.25}
        True
        >>> ResidualDropPath(0.2).eval()(torch.zeros(2), torch.ones(2)).tolist()
        [1.0, 1.0]
    """

    def __init__(self, drop_prob: float) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, residual: Tensor, x: Tensor) -> Tensor:
        if not self.training or self.drop_prob == 0:
            return residual + x
        keep_prob = 1 - self.drop_prob
        shape = (x.shape[0], ) + (1, ) * (x.ndim - 1)
        scale = (keep_prob + torch.rand(shape, dtype=x.dtype, device=x.device)).floor_()
        return torch.addcmul(residual, x, scale.div_(keep_prob))
