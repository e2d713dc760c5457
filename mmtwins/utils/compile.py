"""``torch.compile`` with the inductor options that suit these models.

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
it off for our models; nothing else changes.
"""
from typing import Any, Callable, Dict

import torch

#: Inductor settings merged into every :func:`compile_model` call.
INDUCTOR_OPTIONS: Dict[str, Any] = {'layout_optimization': False}


def compile_arguments(**kwargs) -> Dict[str, Any]:
    """``torch.compile`` arguments with :data:`INDUCTOR_OPTIONS` merged in for inductor.

    With the inductor backend (the default), ``mode`` is expanded into its options
    (``torch.compile`` takes one or the other), then :data:`INDUCTOR_OPTIONS`, then the
    caller's ``options`` (which win) are merged over it. Other backends get the arguments
    unchanged.

    Args:
        **kwargs: ``torch.compile`` arguments (``backend``, ``mode``, ``options``,
            ``fullgraph``, ``dynamic``, ...).

    Returns:
        The arguments to hand ``torch.compile`` or ``nn.Module.compile``.

    Example:
        >>> compile_arguments(fullgraph=True)
        {'fullgraph': True, 'options': {'layout_optimization': False}}
    """
    if kwargs.get('backend', 'inductor') == 'inductor':
        # Imported here: only compiling needs inductor, which takes seconds to import.
        from torch._inductor import list_mode_options
        mode = kwargs.pop('mode', None)
        mode_options = list_mode_options(mode) if mode else {}
        caller_options = kwargs.get('options') or {}
        kwargs['options'] = {**mode_options, **INDUCTOR_OPTIONS, **caller_options}
    return kwargs


def compile_model(model: Callable, **kwargs) -> Callable:
    """``torch.compile(model, **kwargs)``, with :data:`INDUCTOR_OPTIONS` for inductor.

    Args:
        model: Module or function to compile.
        **kwargs: ``torch.compile`` arguments, merged by :func:`compile_arguments`.

    Returns:
        The compiled module or function.

    Example:
        >>> model = get_model('svt-s_8xb128_in1k').eval()
        >>> compiled = compile_model(model, mode='max-autotune-no-cudagraphs')
        >>> with torch.inference_mode():
        ...     logits = compiled(torch.rand(8, 3, 224, 224), mode='tensor')
    """
    return torch.compile(model, **compile_arguments(**kwargs))
