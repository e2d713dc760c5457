"""``torch.compile`` with the settings that suit these models.

Twins and DaViT keep their token maps channels-last, as ``(B, H, W, C)`` tensors, and
hand the convolutions (patch embeddings, position encodings, GSA's sub-sampling) a
``permute(0, 3, 1, 2)`` view of them, which is already a ``channels_last`` NCHW tensor.
Inductor's layout optimisation (``layout_optimization``, on by default, and on CPU for
every graph with a convolution) does not know that: ``GraphLowering``'s
``find_nodes_prefer_channels_last`` marks every 4-D tensor upstream of a convolution,
which here is nearly every token map of the network, and gives it the
``channels_last`` strides of its own shape, as if it were NCHW. A ``(B, H, W, C)``
LayerNorm output is then stored in ``(B, W, C, H)`` order, and every matrix product
and attention that reads it first copies it back (PyTorch 2.15; profiled on compiled
Twins-PCPVT-S: about 5 % of the forward time). The views already give the
convolutions the layout that optimisation looks for, so :func:`compile_model` turns
it off for our models.

It also compiles for static shapes (``dynamic=False``): a new input size compiles a new
graph, as the first did. With PyTorch's default, the second input size recompiles with
symbolic sizes, and the sizes of the padded windows of SVT and DaViT (``-H % 7``, the
stride-2 downsamplings after them) grow into expressions whose ``FloorDiv``
simplification in sympy runs for minutes (tiny SVT and DaViT models had not compiled
their second size after 20 and 6 minutes; static, it takes seconds;
pytorch/pytorch#141675), and a segmentor's validation at varying image sizes failed in
inductor (``TensorReferenceAnalysis`` has no ``python_mod``; PyTorch 2.15).
"""
from typing import Any, Callable, Dict

import torch

#: Inductor settings merged into every :func:`compile_model` call.
INDUCTOR_OPTIONS: Dict[str, Any] = {'layout_optimization': False}


def compile_model(model: Callable, **kwargs) -> Callable:
    """``torch.compile(model, **kwargs)`` with the settings that suit these models.

    ``dynamic`` is False unless the caller sets it. With the inductor backend (the
    default), ``mode`` is expanded into its options (``torch.compile`` takes one or the
    other), then :data:`INDUCTOR_OPTIONS`, then the caller's ``options`` (which win) are
    merged over it. Other backends get the other arguments unchanged.

    Args:
        model: Module or function to compile.
        **kwargs: ``torch.compile`` arguments (``backend``, ``mode``, ``options``,
            ``fullgraph``, ``dynamic``, ...).

    Returns:
        The compiled module or function.

    Example:
        Compiling takes minutes (so the doctest skips it):

        >>> from mmtwins.apis import get_model
        >>> model = get_model('svt-s_8xb128_in1k').eval()  # doctest: +SKIP
        >>> compiled = compile_model(model, mode='max-autotune-no-cudagraphs')  # doctest: +SKIP
        >>> with torch.inference_mode():
        ...     logits = compiled(torch.rand(8, 3, 224, 224), mode='tensor')  # doctest: +SKIP
    """
    kwargs.setdefault('dynamic', False)
    if kwargs.get('backend', 'inductor') == 'inductor':
        # Imported here: only compiling needs inductor, which takes seconds to import.
        from torch._inductor import list_mode_options
        mode = kwargs.pop('mode', None)
        mode_options = list_mode_options(mode) if mode else {}
        caller_options = kwargs.get('options') or {}
        kwargs['options'] = {**mode_options, **INDUCTOR_OPTIONS, **caller_options}
    return torch.compile(model, **kwargs)
