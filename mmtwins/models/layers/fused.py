"""Linear layers with their bias, GELU and residual sum fused by oneDNN, on CPU.

On CPU, eager PyTorch spends on ``gelu(linear(x))`` three passes over the output beyond
the matrix product (the bias is broadcast into it for MKL's product to accumulate onto,
then GELU reads and writes it once more), and on ``residual + linear(x)`` a separate sum.
In Twins and DaViT these outputs are the largest tensors (the MLP's hidden layer is 4 or
8 times the tokens), so those passes cost as much as the products themselves. oneDNN's
matmul applies the bias, the exact (erf) GELU and the residual sum in the product's
epilogue (``torch.ops.mkldnn._linear_pointwise``, the kernel that torch.compile's CPU
backend fuses the same patterns into). Where autograd records, a custom function runs
the same kernels (without GELU in the epilogue: its backward needs the pre-activation)
and computes the usual gradients, the input's with oneDNN too.

Under ``torch.compile`` inference (no autograd) calls the kernel through the custom
operator ``mmtwins::onednn_linear``, which inductor runs as it is and fuses the rest of
the graph around: inductor's own lowering of ``mkldnn._linear_pointwise`` takes only
weights that are graph constants (``freezing=True``), and the products it emits instead
lose to this eager path. Compiled training keeps the plain layers, which inductor
compiles faster and runs faster than it runs the custom function
(``docs/benchmark.md``).
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx

_LINEAR_POINTWISE = getattr(torch.ops.mkldnn, '_linear_pointwise', None) \
    if torch.backends.mkldnn.is_available() else None


def can_fuse(x: Tensor) -> bool:
    """Whether :func:`fused_linear` may run on ``x``, and the other fp32 CPU
    fusions (:class:`~mmtwins.models.layers.ConvPositionEncoding`'s sum).

    That is an fp32 CPU tensor, outside autocast, torch.export and tracers (ONNX
    export), which need standard operators, outside ``torch.func`` transforms (``grad``,
    ``vmap``, ``jvp``: the oneDNN kernel has no batching or forward-mode rule), and
    under torch.compile only where autograd does not record. Callers also keep their
    plain path while a dropout between the fused operations is live.

    Example:
        >>> can_fuse(torch.rand(2, 8)), can_fuse(torch.rand(2, 8).double())
        (True, False)
    """
    return (_LINEAR_POINTWISE is not None and x.device.type == 'cpu'
            and x.dtype == torch.float32 and not torch.is_autocast_enabled('cpu')
            and not torch.compiler.is_exporting() and not torch.jit.is_tracing()
            # The check torch.autograd.Function.apply itself makes; no public API has it.
            and not torch._C._are_functorch_transforms_active()
            and not (torch.compiler.is_compiling() and torch.is_grad_enabled()))


def fused_linear(x: Tensor,
                 weight: Tensor,
                 bias: Optional[Tensor] = None,
                 gelu: bool = False,
                 residual: Optional[Tensor] = None) -> Tensor:
    """``gelu(x @ weight.T + bias)`` or ``residual + x @ weight.T + bias``, fused.

    Only where :func:`can_fuse` holds; differentiable, twice too (``create_graph=True``).

    Args:
        x: ``(..., in_features)``.
        weight: ``(out_features, in_features)``.
        bias: ``(out_features, )`` or None.
        gelu: Apply the exact (erf) GELU.
        residual: A tensor of the output's shape to add (not with ``gelu``).

    Returns:
        ``(..., out_features)``.

    Example:
        >>> layer = torch.nn.Linear(8, 16)
        >>> fused_linear(torch.rand(2, 8), layer.weight, layer.bias, gelu=True).shape
        torch.Size([2, 16])
    """
    if gelu and residual is not None:
        raise ValueError('fused_linear fuses GELU or a residual sum, not both')
    if torch.is_grad_enabled() and any(
            tensor is not None and tensor.requires_grad
            for tensor in (x, weight, bias, residual)):
        return _FusedLinear.apply(x, weight, bias, gelu, residual)
    kernel = _onednn_linear_op if torch.compiler.is_compiling() else _onednn_linear
    return kernel(x, weight, bias, gelu, residual)


def linear_dropout_residual(x: Tensor,
                            layer: nn.Linear,
                            dropout: nn.Dropout,
                            residual: Optional[Tensor] = None) -> Tensor:
    """``residual + dropout(layer(x))`` (no sum without ``residual``), fused where it can be.

    The last layer of a residual branch (MLP ``fc2``, attention ``proj``): fused while
    :func:`can_fuse` holds and the dropout is inactive.

    Example:
        >>> layer, x = torch.nn.Linear(8, 8), torch.rand(2, 8)
        >>> linear_dropout_residual(x, layer, torch.nn.Dropout(0.), residual=x).shape
        torch.Size([2, 8])
    """
    if can_fuse(x) and not (dropout.training and dropout.p):
        return fused_linear(x, layer.weight, layer.bias, residual=residual)
    out = dropout(layer(x))
    return out if residual is None else residual + out


def _onednn_linear(x: Tensor,
                   weight: Tensor,
                   bias: Optional[Tensor] = None,
                   gelu: bool = False,
                   residual: Optional[Tensor] = None) -> Tensor:
    """The oneDNN kernel of :func:`fused_linear`, with no autograd."""
    if residual is not None:
        return _LINEAR_POINTWISE.binary(x, residual, weight, bias, 'add')
    if gelu:
        return _LINEAR_POINTWISE(x, weight, bias, 'gelu', [], 'none')
    return _LINEAR_POINTWISE(x, weight, bias, 'none', [], '')


@torch.library.custom_op('mmtwins::onednn_linear', mutates_args=())
def _onednn_linear_op(x: Tensor, weight: Tensor, bias: Optional[Tensor], gelu: bool,
                      residual: Optional[Tensor]) -> Tensor:
    return _onednn_linear(x, weight, bias, gelu, residual)


@_onednn_linear_op.register_fake
def _(x: Tensor, weight: Tensor, bias: Optional[Tensor], gelu: bool,
      residual: Optional[Tensor]) -> Tensor:
    return x.new_empty((*x.shape[:-1], weight.shape[0]))


class _FusedLinear(torch.autograd.Function):
    """:func:`fused_linear` for autograd: the bias (and residual) fused in forward."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor, weight: Tensor, bias: Optional[Tensor],
                gelu: bool, residual: Optional[Tensor]) -> Tensor:
        ctx.gelu = gelu
        if residual is not None:
            ctx.save_for_backward(x, weight, bias)
            return _onednn_linear(x, weight, bias, residual=residual)
        out = _onednn_linear(x, weight, bias)
        ctx.save_for_backward(x, weight, bias, *([out] if gelu else []))
        return F.gelu(out) if gelu else out

    @staticmethod
    def backward(ctx: FunctionCtx, grad: Tensor):
        x, weight, bias, *saved_pre_activation = ctx.saved_tensors
        needs_x, needs_weight, needs_bias, _, needs_residual = ctx.needs_input_grad
        # Grad mode is on here only under create_graph=True, which records this backward:
        # then only operators with derivatives, and the pre-activation recomputed from the
        # inputs (the saved one is an intermediate, a constant to autograd).
        recorded = torch.is_grad_enabled()
        grad_residual = grad if needs_residual else None
        if ctx.gelu:
            pre_activation = F.linear(x, weight, bias) if recorded else saved_pre_activation[0]
            grad = torch.ops.aten.gelu_backward(grad, pre_activation)
        grad = grad.reshape(-1, grad.shape[-1])
        grad_x = None
        if needs_x:
            # oneDNN reads the transposed weight as it is, faster here than MKL's product.
            grad_x = grad @ weight if recorded else _onednn_linear(grad, weight.t())
            grad_x = grad_x.view(x.shape)
        grad_weight = grad.t() @ x.reshape(-1, x.shape[-1]) if needs_weight else None
        grad_bias = grad.sum(0) if needs_bias else None
        return grad_x, grad_weight, grad_bias, None, grad_residual
