"""Linear layers with their bias, GELU and residual sum fused by oneDNN, for CPU inference.

On CPU, eager PyTorch spends on ``gelu(linear(x))`` three passes over the output beyond
the matrix product (the bias is broadcast into it for MKL's product to accumulate onto,
then GELU reads and writes it once more), and on ``residual + linear(x)`` a separate sum.
In Twins and DaViT these outputs are the largest tensors (the MLP's hidden layer is 4 or
8 times the tokens), so those passes cost as much as the products themselves. oneDNN's
matmul applies the bias, the exact (erf) GELU and the residual sum in the product's
epilogue (``torch.ops.mkldnn._linear_pointwise``, the kernel that torch.compile's CPU
backend fuses the same patterns into). The kernels have no autograd, so the modules use
them only where :func:`can_fuse` says so and keep their plain path everywhere else.
"""
from typing import Optional

import torch
from torch import Tensor, nn

_LINEAR_POINTWISE = getattr(torch.ops.mkldnn, '_linear_pointwise', None) \
    if torch.backends.mkldnn.is_available() else None


def can_fuse(x: Tensor, module: nn.Module) -> bool:
    """Whether ``module`` may run its linear layers on ``x`` with :func:`fused_linear`.

    That is fp32 CPU inference in eager mode: ``module`` in eval mode (so dropout and
    drop path are no-ops), no autograd graph to record, no autocast, and neither
    ``torch.compile`` (which fuses by itself) nor a tracer (ONNX export) at work.

    Args:
        x: The layer's input.
        module: The module whose parameters the layers use.

    Example:
        >>> with torch.inference_mode():
        ...     can_fuse(torch.rand(2, 8), nn.Linear(8, 8).eval())
        True
    """
    if _LINEAR_POINTWISE is None or module.training or x.device.type != 'cpu' or \
            x.dtype != torch.float32 or torch.is_autocast_enabled('cpu') or \
            torch.compiler.is_compiling() or torch.jit.is_tracing():
        return False
    return not torch.is_grad_enabled() or not (
        x.requires_grad or any(param.requires_grad for param in module.parameters()))


def fused_linear(x: Tensor,
                 weight: Tensor,
                 bias: Optional[Tensor] = None,
                 gelu: bool = False,
                 residual: Optional[Tensor] = None) -> Tensor:
    """``gelu(x @ weight.T + bias)`` or ``residual + x @ weight.T + bias`` in one kernel.

    Only where :func:`can_fuse` holds.

    Args:
        x: ``(..., in_features)``.
        weight: ``(out_features, in_features)``.
        bias: ``(out_features, )`` or None.
        gelu: Apply the exact (erf) GELU.
        residual: A tensor of the output's shape to add (not with ``gelu``).

    Returns:
        ``(..., out_features)``.

    Example:
        >>> layer = nn.Linear(8, 16)
        >>> with torch.inference_mode():
        ...     out = fused_linear(torch.rand(2, 8), layer.weight, layer.bias, gelu=True)
        >>> out.shape
        torch.Size([2, 16])
    """
    if residual is not None:
        if gelu:
            raise ValueError('fused_linear fuses GELU or a residual sum, not both')
        return _LINEAR_POINTWISE.binary(x, residual, weight, bias, 'add')
    if gelu:
        return _LINEAR_POINTWISE(x, weight, bias, 'gelu', [], 'none')
    return _LINEAR_POINTWISE(x, weight, bias, 'none', [], '')
