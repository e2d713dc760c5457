"""``inference_model``: predictions for images, from a model or a zoo name.

Classification goes through mmpretrain's ``ImageClassificationInferencer``, so results are
exactly what mmpretrain returns.
"""
import os.path as osp
from typing import Callable, Dict, List, Sequence, Union

import numpy as np
import torch

from .model_zoo import get_model, task_of

ImageInput = Union[str, np.ndarray]


def _classify(model: torch.nn.Module, images: List[ImageInput], **kwargs) -> List[dict]:
    from mmpretrain.apis import ImageClassificationInferencer
    return ImageClassificationInferencer(model)(images, **kwargs)


# Task -> function(model, images, **kwargs) returning one result per image.
INFERENCE_FUNCTIONS: Dict[str, Callable[..., List[dict]]] = {
    'classification': _classify,
}


def _check_images(images: Sequence[ImageInput]) -> None:
    for image in images:
        if isinstance(image, str):
            if not osp.isfile(image):
                raise FileNotFoundError(f'image file {image!r} does not exist')
        elif not isinstance(image, np.ndarray):
            raise TypeError(f'an image must be a file path or a numpy array (H, W, C in '
                            f'BGR order, as read by mmcv.imread), got {type(image).__name__}')


def inference_model(model: Union[torch.nn.Module, str],
                    images: Union[ImageInput, Sequence[ImageInput]],
                    device: Union[str, torch.device, None] = None,
                    **kwargs) -> Union[dict, List[dict]]:
    """Predicts for one image or a list of images.

    Args:
        model: a model from :func:`~mmtwins.apis.get_model`, or a zoo name or alias
            (its published weights are then downloaded; without network, build it with
            ``get_model(name, pretrained='/path/to/weights.pth')`` first).
        images: a file path, an ``(H, W, 3)`` BGR array, or a list of these.
        device: where to run a model given by name.
        **kwargs: passed to the task's inferencer (classification: ``topk``, ...).

    Returns:
        For one image a dict, for a list a list of dicts. Classification:
        ``pred_label``, ``pred_score``, ``pred_scores`` and, when the class names are
        known, ``pred_class``, as mmpretrain returns them.

    Example:
        >>> model = get_model('svt-s_8xb128_in1k', pretrained='alt_gvt_small.pth')
        >>> inference_model(model, 'demo/bird.JPEG')['pred_class']
        'magpie'
    """
    single = not isinstance(images, (list, tuple))
    batch = [images] if single else list(images)
    _check_images(batch)
    if isinstance(model, str):
        model = get_model(model, pretrained=True, device=device)
    task = task_of(model._config)
    if task not in INFERENCE_FUNCTIONS:
        raise ValueError(f'inference_model supports {sorted(INFERENCE_FUNCTIONS)} models, '
                         f'not {task}')
    results = INFERENCE_FUNCTIONS[task](model, batch, **kwargs)
    return results[0] if single else results
