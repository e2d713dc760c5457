"""Parameters and FLOPs of classifiers, segmentors and detectors, as published tables count.

FLOPs here are multiply-accumulates (one fused multiply-add is one FLOP), counted by
mmengine's :class:`~mmengine.analysis.FlopAnalyzer`: fvcore's counter, which traces the
model with ``torch.jit`` and what OpenMMLab's ``get_flops`` tools use. It counts
convolutions, linear layers, matrix products (``matmul``, ``bmm``, ``einsum``) and
normalisation layers, and leaves elementwise operations (additions, activations, softmax)
out. This module adds the one operator our models need and it lacks.

Example:
    >>> from mmtwins.apis import get_model
    >>> result = count_complexity(get_model('svt-s_8xb128_in1k'))
    >>> result.input_shape, result.params, round(result.flops / 1e9, 2)
    ((224, 224), 24060776, 2.94)
"""
import contextlib
import functools
import math
from dataclasses import dataclass
from typing import (Any, Callable, Counter, Dict, Iterator, List, NamedTuple, Optional,
                    Tuple)

import torch
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.analysis.jit_handles import get_shape
from torch import nn

from mmtwins.apis.model_zoo import TASKS

SDPA_OP = 'aten::scaled_dot_product_attention'

# (H, W) of the input when none is given: the size each library's published FLOPs use.
# Detection keeps mmdet's historical 1280 x 800 (H x W) of its get_flops tool.
DEFAULT_SHAPES: Dict[str, Tuple[int, int]] = {
    'classification': (224, 224),
    'segmentation': (512, 512),
    'detection': (1280, 800),
}


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """Multiply-adds of one ``aten::scaled_dot_product_attention`` node.

    The two products ``Q K^T`` (``L x S`` scores of ``E``-channel queries and keys) and
    ``softmax(.) V`` (``Ev``-channel values), per batch and head: ``L * S * (E + Ev)``.
    The scaling, mask and softmax are elementwise and not counted, as fvcore counts the
    same attention written with ``matmul``. A causal mask counts in full, as a dense
    kernel computes it.

    Args:
        inputs: The node's jit inputs ``query (..., L, E)``, ``key (..., S, E)``,
            ``value (..., S, Ev)``, then the mask and options.
        outputs: The node's jit output ``(..., L, Ev)``.

    Returns:
        The number of multiply-adds.

    Example:
        >>> import torch.nn.functional as F
        >>> class Attention(nn.Module):
        ...     def forward(self, q, k, v):
        ...         return F.scaled_dot_product_attention(q, k, v)
        >>> q = k = v = torch.rand(2, 3, 49, 32)  # (B, heads, tokens, channels)
        >>> analyzer = FlopAnalyzer(Attention(), (q, k, v))
        >>> analyzer.set_op_handle(SDPA_OP, sdpa_flop_jit).total()
        921984
    """
    query, key, value = (get_shape(tensor) for tensor in inputs[:3])
    # The output's leading dims are those of the broadcast batch and heads (grouped-query
    # attention shares key/value heads between query heads).
    batch_and_heads = math.prod(get_shape(outputs[0])[:-2])
    return batch_and_heads * query[-2] * key[-2] * (query[-1] + value[-1])


def flop_analyzer(model: nn.Module, inputs: Tuple[Any, ...]) -> FlopAnalyzer:
    """mmengine's FlopAnalyzer, quiet, with scaled dot-product attention counted.

    mmengine 0.10 (like fvcore, which it copies) has no handle for
    ``aten::scaled_dot_product_attention``: it would count every attention of our models
    as zero, with no more than a warning. The handle is added here.

    Args:
        model: The module to trace.
        inputs: Positional inputs of ``model``'s forward.

    Returns:
        The analyzer; it traces lazily, on the first query such as ``total()``.

    Example:
        >>> flop_analyzer(nn.Linear(8, 4), (torch.rand(2, 8), )).total()
        64
    """
    analyzer = FlopAnalyzer(model, inputs).set_op_handle(SDPA_OP, sdpa_flop_jit)
    analyzer.unsupported_ops_warnings(False)  # reported in Complexity.uncounted_ops instead
    analyzer.uncalled_modules_warnings(False)
    return analyzer


@dataclass
class Complexity:
    """What :func:`count_complexity` measured.

    Attributes:
        task: ``'classification'``, ``'segmentation'`` or ``'detection'``.
        input_shape: ``(H, W)`` of the image fed to the model, after its data
            preprocessor (which may pad it).
        params: Number of parameters of the whole model as built.
        flops: Multiply-adds of one forward pass on one image.
        uncounted_ops: Operators the forward ran that count as no FLOPs (elementwise
            ones such as ``aten::add``, ``aten::gelu``, ``aten::softmax``), with how
            often each ran.
        analyzer: The traced analyzer, for per-module and per-operator figures.
    """
    task: str
    input_shape: Tuple[int, int]
    params: int
    flops: int
    uncounted_ops: Counter[str]
    analyzer: FlopAnalyzer

    @property
    def sdpa_flops(self) -> int:
        """The multiply-adds of the ``scaled_dot_product_attention`` calls, included in
        ``flops``: every attention of Twins, DaViT's spatial attention."""
        return self.analyzer.by_operator().get('scaled_dot_product_attention', 0)


class PublishedFlops(NamedTuple):
    """A FLOPs figure of the model zoo (``FLOPs`` of a ``metafile.yml`` entry).

    Attributes:
        flops: The figure, in multiply-adds.
        counts_attention: Whether it counts the attention products (``FLOPs Count
            Attention`` of the entry, default true). The official Twins figures leave
            them out: they come from mmcv 1.x's module-hook counter, which does not see
            the products of ``q`` and ``k`` and of the weights and ``v``.
    """
    flops: int
    counts_attention: bool


def task_of_model(model: nn.Module) -> str:
    """The task of a model: the library its class (or a base class) comes from.

    Args:
        model: An mmpretrain classifier, mmseg segmentor or mmdet detector.

    Example:
        >>> from mmtwins.apis import get_model
        >>> task_of_model(get_model('upernet_svt-s_8xb2-160k_ade20k-512x512'))
        'segmentation'
    """
    for cls in type(model).__mro__:
        library = cls.__module__.split('.')[0]
        if library in TASKS:
            return TASKS[library]
    raise ValueError(f'{type(model).__name__} is no mmpretrain, mmseg or mmdet model: '
                    f'cannot tell how to feed it an image')


def data_sample(task: str, shape: Tuple[int, int]) -> Optional[Any]:
    """The data sample a model of ``task`` needs for a ``shape`` image in tensor mode.

    Detectors read the image's size from it to place their proposals; segmentors take
    it; classifiers need none.

    Args:
        task: ``'classification'``, ``'segmentation'`` or ``'detection'``.
        shape: ``(H, W)`` of the (preprocessed) image.

    Returns:
        An mmseg ``SegDataSample`` or mmdet ``DetDataSample``; None for classification.

    Example:
        >>> data_sample('detection', (800, 1280)).img_shape
        (800, 1280)
    """
    if task == 'segmentation':
        from mmseg.structures import SegDataSample
        return SegDataSample(metainfo=dict(ori_shape=shape, img_shape=shape, pad_shape=shape))
    if task == 'detection':
        from mmdet.structures import DetDataSample
        return DetDataSample(
            metainfo=dict(ori_shape=shape, img_shape=shape, scale_factor=(1., 1.)))
    return None


def _preprocessed_batch(model: nn.Module, task: str,
                        shape: Tuple[int, int]) -> Tuple[torch.Tensor, Optional[list]]:
    """One random image of ``shape`` through the model's data preprocessor.

    Returns:
        The batch tensor and the data samples (None for classifiers).
    """
    # Fixed pixels: a detector's proposal count, hence its RoI head's FLOPs, depends on them.
    generator = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, *shape), generator=generator, dtype=torch.uint8)
    sample = data_sample(task, shape)
    data = model.data_preprocessor(
        dict(inputs=[image], data_samples=None if sample is None else [sample]), False)
    return data['inputs'], data['data_samples']


def tensor_mode_forward(model: nn.Module,
                        data_samples: Optional[list] = None) -> Callable[[torch.Tensor], Any]:
    """The tensor-mode forward (``mode='tensor'``) of an mmengine model, with its data
    samples bound: a function of the batch alone.

    Tracers and compilers pass tensors only; detectors read the image size from the data
    samples to place their proposals. Assigned to ``model.forward``, it makes
    ``model(inputs)`` (hooks included) that forward, as mmdet's get_flops tool does.

    Args:
        model: An mmpretrain classifier, mmseg segmentor or mmdet detector.
        data_samples: What the forward takes besides the batch, one per image (see
            :func:`data_sample`); None for classifiers.

    Returns:
        The bound forward; it calls the forward of ``model``'s class, so that it can
        stand in for ``model.forward``.

    Example:
        >>> from mmtwins.apis import get_model
        >>> model = get_model('svt-s_8xb128_in1k')
        >>> model.forward = tensor_mode_forward(model)
        >>> model(torch.rand(1, 3, 224, 224)).shape
        torch.Size([1, 1000])
    """
    return functools.partial(
        type(model).forward, model, data_samples=data_samples, mode='tensor')


@contextlib.contextmanager
def _forward_replaced(model: nn.Module, forward: Callable[..., Any]) -> Iterator[None]:
    """``model.forward`` is ``forward`` inside the block; the model's own one after it."""
    own_forward = vars(model).get('forward')
    model.forward = forward
    try:
        yield
    finally:
        del model.forward
        if own_forward is not None:
            model.forward = own_forward


def count_complexity(model: nn.Module,
                     shape: Optional[Tuple[int, int]] = None) -> Complexity:
    """Parameters and FLOPs of one eval-mode forward pass of a model on one image.

    A random image goes through the model's data preprocessor (as real data would,
    padding included), then the whole model runs in tensor mode: a classifier's
    backbone, neck and head; a segmentor's backbone, neck and decode head (an auxiliary
    head is training-only and not run); a detector's backbone, neck and heads, with its
    RoI head on the proposals the RPN keeps for that image.

    Args:
        model: A classifier, segmentor or detector, as
            :func:`mmtwins.apis.get_model` builds them.
        shape: ``(H, W)`` of the image; default: 224 x 224 for classification,
            512 x 512 for segmentation, 1280 x 800 for detection.

    Returns:
        The counts, in a :class:`Complexity`.

    Example:
        >>> from mmtwins.apis import get_model
        >>> result = count_complexity(get_model('davit-t_4xb256_in1k'), (384, 384))
        >>> round(result.flops / 1e9, 2)
        13.89
    """
    task = task_of_model(model)
    shape = tuple(shape or DEFAULT_SHAPES[task])
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            inputs, data_samples = _preprocessed_batch(model, task, shape)
            # The jit trace passes tensors only.
            with _forward_replaced(model, tensor_mode_forward(model, data_samples)):
                analyzer = flop_analyzer(model, (inputs, ))
                flops = analyzer.total()  # traces here, while the forward is bound
    finally:
        model.train(was_training)
    return Complexity(
        task=task,
        input_shape=tuple(inputs.shape[-2:]),
        params=parameter_count(model)[''],
        flops=flops,
        uncounted_ops=analyzer.unsupported_ops(),
        analyzer=analyzer)


def published_flops(model: nn.Module, result: Complexity) -> Optional[PublishedFlops]:
    """The FLOPs the model zoo publishes for a model, if ``result`` is comparable.

    Args:
        model: A model that :func:`mmtwins.apis.get_model` built from a zoo name.
        result: Its :func:`count_complexity` result.

    Returns:
        The figure of the model's ``metafile.yml`` entry; None for a model built from a
        config, one with no published figure, or a count at another size than the task's
        default (the size the published figures are for).

    Example:
        >>> from mmtwins.apis import get_model
        >>> model = get_model('svt-s_8xb128_in1k')
        >>> published_flops(model, count_complexity(model))
        PublishedFlops(flops=2820000000, counts_attention=False)
    """
    info = getattr(model, '_metainfo', None)
    if info is None or result.input_shape != DEFAULT_SHAPES[result.task]:
        return None
    flops = info.metadata.get('FLOPs')
    if flops is None:
        return None
    return PublishedFlops(flops, info.metadata.get('FLOPs Count Attention', True))
