"""``inference_model``: predictions for images, from a model or a zoo name.

Classification goes through mmpretrain's ``ImageClassificationInferencer``, so results are
exactly what mmpretrain returns; segmentation through mmseg's ``inference_model``.
"""
import copy
import os.path as osp
from typing import Callable, Dict, List, Sequence, Union

import mmcv
import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from .model_zoo import get_model, task_of

ImageInput = Union[str, np.ndarray]


def _classify(model: torch.nn.Module, images: List[ImageInput], **kwargs) -> List[dict]:
    from mmpretrain.apis import ImageClassificationInferencer
    return ImageClassificationInferencer(model)(images, **kwargs)


def _mmseg_config(config: Config, image: ImageInput) -> Config:
    """A copy of ``config`` for mmseg's ``inference_model``, which edits it in place.

    Its ``test_pipeline`` is the test dataloader's, reading ``image`` from a file or an array.
    """
    config = copy.deepcopy(config)
    config.test_pipeline = config.test_dataloader.dataset.pipeline
    if isinstance(image, np.ndarray):
        config.test_pipeline[0] = dict(type='LoadImageFromNDArray')
    return config


def _save_overlay(model: torch.nn.Module, image: ImageInput, sample, out_file: str,
                  opacity: float) -> None:
    from mmseg.apis import show_result_pyplot
    if isinstance(image, np.ndarray):
        image = mmcv.bgr2rgb(image)
    model.dataset_meta = model._dataset_meta
    show_result_pyplot(model, image, sample, opacity=opacity, draw_gt=False, show=False,
                       out_file=out_file)


def _segment(model: torch.nn.Module,
             images: List[ImageInput],
             return_logits: bool = False,
             out_file: Union[str, Sequence[str], None] = None,
             opacity: float = 0.5) -> List[dict]:
    """Label maps (and logits) of a segmentor, one image at a time; optional overlays."""
    from mmseg.apis import inference_model as mmseg_inference_model
    out_files = [out_file] if isinstance(out_file, str) else out_file
    if out_files is not None and len(out_files) != len(images):
        raise ValueError(f'out_file: one path per image, got {len(out_files)} paths for '
                         f'{len(images)} images')
    results = []
    for index, image in enumerate(images):
        model.cfg = _mmseg_config(model._config, image)
        with DefaultScope.overwrite_default_scope(model.cfg.default_scope):
            sample = mmseg_inference_model(model, image)
        result = dict(pred_label_map=sample.pred_sem_seg.data[0].cpu().numpy())
        if return_logits:
            result['logits'] = sample.seg_logits.data.cpu().numpy()
        if out_files is not None:
            _save_overlay(model, image, sample, out_files[index], opacity)
        results.append(result)
    return results


# Task -> function(model, images, **kwargs) returning one result per image.
INFERENCE_FUNCTIONS: Dict[str, Callable[..., List[dict]]] = {
    'classification': _classify,
    'segmentation': _segment,
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
        **kwargs: passed to the task's inferencer. Classification: ``topk``, ...
            Segmentation: ``return_logits`` (default ``False``), ``out_file`` (a path for
            one image, a list of paths for a list: the image with the label map painted
            over it in the dataset's palette) and ``opacity`` of that overlay (0.5).

    Returns:
        For one image a dict, for a list a list of dicts. Classification:
        ``pred_label``, ``pred_score``, ``pred_scores`` and, when the class names are
        known, ``pred_class``, as mmpretrain returns them. Segmentation:
        ``pred_label_map``, an ``(H, W)`` integer array of class indices at the image's
        size, and with ``return_logits=True`` the ``(num_classes, H, W)`` ``logits``.

    Example:
        >>> model = get_model('svt-s_8xb128_in1k', pretrained='alt_gvt_small.pth')
        >>> inference_model(model, 'demo/bird.JPEG')['pred_class']
        'magpie'
        >>> segmentor = get_model('upernet_svt-s_8xb2-160k_ade20k-512x512',
        ...                       pretrained='work_dirs/upernet_svt-s/iter_160000.pth')
        >>> inference_model(segmentor, 'demo/grace_hopper.jpg', out_file='overlay.png')[
        ...     'pred_label_map'].shape
        (600, 512)
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
