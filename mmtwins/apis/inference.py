"""``inference_model``: predictions for images, from a model or a zoo name.

Classification goes through mmpretrain's ``ImageClassificationInferencer``, so results are
exactly what mmpretrain returns; segmentation through mmseg's ``inference_model``, detection
through mmdet's ``inference_detector``.
"""
import copy
import os
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import mmcv
import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmtwins.utils.atomic_files import check_can_create
from .model_zoo import get_model, task_of

ImageInput = Union[str, os.PathLike, np.ndarray]
OutFiles = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]], None]


def _test_pipeline(config: Config) -> list:
    """The test dataloader's pipeline, else the config's ``test_pipeline`` (as mmseg reads
    it); a ``ValueError`` naming the config if it has neither."""
    pipeline = config.get('test_dataloader', {}).get('dataset', {}).get('pipeline') \
        or config.get('test_pipeline')
    if not pipeline:
        raise ValueError(f'{config.filename or "the config"} has no test pipeline '
                         f'(test_dataloader.dataset.pipeline or test_pipeline) to read '
                         f'images with')
    return copy.deepcopy(pipeline)


def top_classes(scores: np.ndarray, classes: Optional[Sequence[str]],
                topk: int = 5) -> List[Tuple[str, float]]:
    """The ``topk`` best ``(class name, score)`` pairs, best first; labels as names when
    ``classes`` is empty.

    Example:
        >>> top_classes(np.array([.1, .7, .2]), ['cat', 'dog', 'fox'], topk=2)
        [('dog', 0.7), ('fox', 0.2)]
    """
    labels = np.argsort(-scores, kind='stable')[:topk]
    return [(classes[label] if classes else str(label), float(scores[label]))
            for label in labels]


def draw_classes(image: ImageInput, predictions: Sequence[Tuple[str, float]],
                 out_file: str) -> None:
    """Writes ``image`` with one ``score class`` line per prediction in its top-left corner.

    Args:
        image: A file path or a BGR array (not changed).
        predictions: ``(class name, score)`` pairs, as :func:`top_classes` gives.
        out_file: The image file to write.

    Example:
        >>> draw_classes('demo/grace_hopper.jpg', [('military uniform', 0.9)],
        ...              'drawn.jpg')  # doctest: +SKIP
    """
    image = mmcv.imread(image).copy()
    scale = max(image.shape[:2]) / 600
    for row, (name, score) in enumerate(predictions):
        origin = (int(10 * scale), int((30 + 30 * row) * scale))
        text = f'{score:.3f} {name}'
        # White text on a black outline, legible on any image.
        for colour, thickness in (((0, 0, 0), 4), ((255, 255, 255), 2)):
            cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.7 * scale, colour,
                        int(thickness * scale) + 1)
    mmcv.imwrite(image, out_file)


def _classify(model: torch.nn.Module,
              images: List[ImageInput],
              out_file: OutFiles = None,
              **kwargs) -> list:
    """mmpretrain's results for each image; optional images with their best classes."""
    from mmpretrain.apis import ImageClassificationInferencer

    class Inferencer(ImageClassificationInferencer):
        """mmpretrain's, reading the pipeline as the other tasks do (its own reads
        ``test_dataloader`` only, and fails with an ``AttributeError`` without one)."""

        def _init_pipeline(self, cfg: Config) -> Callable:
            pipeline = _test_pipeline(cfg)
            return super()._init_pipeline(
                Config(dict(test_dataloader=dict(dataset=dict(pipeline=pipeline)))))

    out_files = _out_files(out_file, images)
    results = Inferencer(model)(images, **kwargs)
    classes = model._dataset_meta.get('classes')
    for image, result, path in zip(images, results, out_files):
        if path is not None:
            scores = result['pred_scores'] if isinstance(result, dict) else \
                result.pred_score.cpu().numpy()  # return_datasamples=True
            draw_classes(image, top_classes(scores, classes), path)
    return results


def _mmseg_config(config: Config, image: ImageInput) -> Config:
    """A copy of ``config`` for mmseg's ``inference_model``, which edits it in place.

    Its ``test_pipeline`` is :func:`_test_pipeline`'s, reading ``image`` from a file or
    an array.
    """
    pipeline = _test_pipeline(config)
    config = copy.deepcopy(config)
    config.test_pipeline = pipeline
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
             out_file: OutFiles = None,
             opacity: float = 0.5) -> List[dict]:
    """Label maps (and logits) of a segmentor, one image at a time; optional overlays."""
    from mmseg.apis import inference_model as mmseg_inference_model
    results = []
    for image, path in zip(images, _out_files(out_file, images)):
        model.cfg = _mmseg_config(model._config, image)
        with DefaultScope.overwrite_default_scope(model.cfg.default_scope):
            sample = mmseg_inference_model(model, image)
        result = dict(pred_label_map=sample.pred_sem_seg.data[0].cpu().numpy())
        if return_logits:
            result['logits'] = sample.seg_logits.data.cpu().numpy()
        if path is not None:
            _save_overlay(model, image, sample, path, opacity)
        results.append(result)
    return results


def _out_files(out_file: OutFiles, images: List[ImageInput]) -> List[Optional[str]]:
    """One output path per image (or ``None``s), checked."""
    if out_file is None:
        return [None] * len(images)
    out_files = [out_file] if isinstance(out_file, (str, os.PathLike)) else list(out_file)
    if len(out_files) != len(images):
        raise ValueError(f'out_file: one path per image, got {len(out_files)} paths for '
                         f'{len(images)} images')
    # Checked before any inference: cv2 only fails when it writes the first image.
    try:
        return [check_image_file(os.fspath(path)) for path in out_files]
    except ValueError as error:
        raise ValueError(f'out_file: {error}') from None


def check_image_file(path: str) -> str:
    """``path`` if an image can be written to it: cv2 has a writer for its extension, and
    its folder is writable or can be created (mmcv creates missing folders).

    Args:
        path: Where an image is to be written.

    Returns:
        ``path``.

    Raises:
        ValueError: If cv2 has no writer for its extension (or it has none), or the
            nearest existing folder above it is a file or not writable.

    Example:
        >>> check_image_file('drawn.png')
        'drawn.png'
    """
    if not cv2.haveImageWriter(path):
        raise ValueError(f'cannot write an image to {path!r}; use an image extension such '
                         f'as .png or .jpg')
    return check_can_create(path)


def _detection_result(sample, class_names: Sequence[str]) -> dict:
    """Numpy arrays of one image's detections; ``masks`` when the model predicts them."""
    instances = sample.pred_instances.cpu()
    result = dict(bboxes=instances.bboxes.numpy(), scores=instances.scores.numpy(),
                  labels=instances.labels.numpy())
    if class_names:
        result['label_names'] = [class_names[label] for label in result['labels']]
    if 'masks' in instances:
        result['masks'] = instances.masks.numpy().astype(bool)
    return result


def _draw_detections(model: torch.nn.Module, image: ImageInput, sample, out_file: str,
                     score_thr: float) -> None:
    from mmdet.visualization import DetLocalVisualizer
    image = mmcv.imread(image) if isinstance(image, str) else image
    visualizer = DetLocalVisualizer.get_instance('mmtwins_inference_model')
    visualizer.dataset_meta = model._dataset_meta
    visualizer.add_datasample('detections', mmcv.bgr2rgb(image), data_sample=sample,
                              draw_gt=False, show=False, out_file=out_file,
                              pred_score_thr=score_thr)


def _detection_pipeline(config: Config, image: ImageInput):
    """The test pipeline of ``config``, reading ``image`` from a file or an array.

    Passed to mmdet's ``inference_detector`` rather than left to it: mmdet 3.3 switches the
    first transform for arrays on a shallow copy of ``model.cfg``, so after one array every
    later file input of that model fails.
    """
    from mmcv.transforms import Compose
    from mmdet.utils import get_test_pipeline_cfg
    pipeline = copy.deepcopy(get_test_pipeline_cfg(config))
    if isinstance(image, np.ndarray):
        pipeline[0] = dict(type='mmdet.LoadImageFromNDArray')
    return Compose(pipeline)


def _detect(model: torch.nn.Module,
            images: List[ImageInput],
            out_file: OutFiles = None,
            score_thr: float = 0.3) -> List[dict]:
    """Boxes, scores, labels (and masks) of a detector; optional drawn images."""
    from mmdet.apis import inference_detector
    out_files = _out_files(out_file, images)
    model.cfg = model._config
    class_names = model._dataset_meta.get('classes', ())
    results = []
    with DefaultScope.overwrite_default_scope(model.cfg.default_scope):
        for image, path in zip(images, out_files):
            sample = inference_detector(model, image, _detection_pipeline(model.cfg, image))
            if path is not None:
                _draw_detections(model, image, sample, path, score_thr)
            results.append(_detection_result(sample, class_names))
    return results


# Task -> function(model, images, **kwargs) returning one result per image.
INFERENCE_FUNCTIONS: Dict[str, Callable[..., List[dict]]] = {
    'classification': _classify,
    'segmentation': _segment,
    'detection': _detect,
}


def _checked_image(image: ImageInput) -> Union[str, np.ndarray]:
    """``image`` as the libraries take it: a path as ``str``, an array as ``(H, W, 3)`` BGR.

    A grey array, ``(H, W)`` or ``(H, W, 1)``, becomes BGR as ``mmcv.imread`` reads a grey
    file: the detectors fail on one channel, and the classifiers and segmentors then give
    the same results as for the file.

    Raises:
        FileNotFoundError: for a path to no file.
        TypeError: for neither a path nor an array.
        ValueError: for a folder, a file that does not decode as an image (empty,
            truncated, not an image), an array of another shape, such as ``(H, W, 4)``
            with alpha, or of another type than ``uint8``.
    """
    if isinstance(image, (str, os.PathLike)):
        return _checked_image_file(os.fspath(image))
    if not isinstance(image, np.ndarray):
        raise TypeError(f'an image must be a file path or a numpy array (H, W, 3 in BGR '
                        f'order, as read by mmcv.imread), got {type(image).__name__}')
    if image.dtype != np.uint8:
        # The pipelines take any array as 0..255 values: the classifiers' resizing
        # refuses other types with a bare AssertionError, the segmentors and detectors
        # would predict on the raw values.
        raise ValueError(f'an image array must be uint8 (0 to 255), as mmcv.imread reads '
                         f'an image, not {image.dtype}; convert it first, e.g. '
                         f'(image * 255).round().astype(np.uint8) from floats in [0, 1], '
                         f'(image // 257).astype(np.uint8) from 16 bits')
    if image.ndim == 2 or image.shape[2:] == (1, ):
        return mmcv.gray2bgr(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'an image array must have shape (H, W, 3) in BGR order, as read '
                         f'by mmcv.imread, or (H, W) grey; got shape {image.shape}. Drop an '
                         f'alpha channel with cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)')
    return image


def _checked_image_file(path: str) -> str:
    """``path`` if it is a file that decodes as an image, as the test pipelines read it."""
    if osp.isdir(path):
        raise ValueError(f'{path!r} is a folder; pass image files, e.g. '
                         f'sorted(glob.glob(\'{osp.join(path, "*.jpg")}\'))')
    if not osp.isfile(path):
        raise FileNotFoundError(f'image file {path!r} does not exist')
    # Decoded here once, at an eighth of the size where the format allows: otherwise
    # each task's pipeline fails in its own way (a cv2.error, an AssertionError, an
    # ImageLoadError) on an empty, truncated or non-image file.
    if cv2.imread(path, cv2.IMREAD_REDUCED_COLOR_8) is None:
        raise ValueError(f'cannot read an image from {path!r}: empty, truncated or not an '
                         f'image file')
    return path


def inference_model(model: Union[torch.nn.Module, str, os.PathLike],
                    images: Union[ImageInput, Sequence[ImageInput]],
                    device: Union[str, torch.device, None] = None,
                    **kwargs) -> Union[dict, List[dict]]:
    """Predicts for one image or a list of images.

    Args:
        model: a model from :func:`~mmtwins.apis.get_model`, or a zoo name or alias
            (its published weights are then downloaded; without network, build it with
            ``get_model(name, pretrained='/path/to/weights.pth')`` first).
        images: a file path (``str`` or ``os.PathLike``), an ``(H, W, 3)`` BGR array as
            ``mmcv.imread`` gives (an ``(H, W)`` grey one is made BGR), or a list of these.
        device: where to run a model given by name.
        **kwargs: passed to the task's inferencer. Classification: those of mmpretrain's
            ``ImageClassificationInferencer``, e.g. ``batch_size`` (1), ``show_dir`` (a
            folder to save each image to with its prediction drawn on it) or
            ``return_datasamples=True`` (mmpretrain ``DataSample`` objects, not dicts); it
            takes no ``topk``: the best classes are the largest ``pred_scores``
            (:func:`top_classes`). And ``out_file`` (a path for one image, a list of paths
            for a list: the image with its five best classes and their scores).
            Segmentation: ``return_logits`` (default ``False``), ``out_file`` (a path for
            one image, a list of paths for a list: the image with the label map painted
            over it in the dataset's palette) and ``opacity`` of that overlay (0.5).
            Detection: ``out_file`` (the image with the boxes, masks and class names of
            the detections scoring at least ``score_thr`` drawn on it; default 0.3).

    Returns:
        For one image a dict, for a list a list of dicts. Classification:
        ``pred_label``, ``pred_score``, ``pred_scores`` and, when the class names are
        known, ``pred_class``, as mmpretrain returns them. Segmentation:
        ``pred_label_map``, an ``(H, W)`` integer array of class indices at the image's
        size, and with ``return_logits=True`` the ``(num_classes, H, W)`` ``logits``.
        Detection: all the detections the model keeps (up to 100), best first:
        ``bboxes`` ``(N, 4)`` as ``x1, y1, x2, y2`` in image pixels, ``scores`` ``(N,)``,
        ``labels`` ``(N,)`` class indices, ``label_names`` when the class names are known
        and, for instance segmentation, ``masks`` ``(N, H, W)`` booleans.

    Raises:
        FileNotFoundError: for an image path to no file.
        ValueError: for an image path to a folder or to a file that does not decode
            (empty, truncated, not an image), an image array of another shape (an alpha
            channel) or type than ``uint8``, an ``out_file`` that cannot be written (no
            image extension, no writable folder), a config without a test pipeline or
            whose task :func:`~mmtwins.apis.task_of` cannot tell.

    Example:
        With weight files of yours (so the doctest skips it):

        >>> model = get_model('svt-s_8xb128_in1k',
        ...                   pretrained='alt_gvt_small.pth')  # doctest: +SKIP
        >>> result = inference_model(model, 'demo/grace_hopper.jpg')  # doctest: +SKIP
        >>> sorted(result)  # doctest: +SKIP
        ['pred_class', 'pred_label', 'pred_score', 'pred_scores']
        >>> segmentor = get_model('upernet_svt-s_8xb2-160k_ade20k-512x512',
        ...                       pretrained='iter_160000.pth')  # doctest: +SKIP
        >>> inference_model(segmentor, 'demo/grace_hopper.jpg',
        ...                 out_file='overlay.png')['pred_label_map'].shape  # doctest: +SKIP
        (600, 512)
        >>> detector = get_model('mask-rcnn_svt-s_fpn_1x_coco',
        ...                      pretrained='epoch_12.pth')  # doctest: +SKIP
        >>> sorted(inference_model(detector, 'demo/grace_hopper.jpg'))  # doctest: +SKIP
        ['bboxes', 'label_names', 'labels', 'masks', 'scores']
    """
    single = not isinstance(images, (list, tuple))
    batch = [_checked_image(image) for image in ([images] if single else images)]
    if isinstance(model, (str, os.PathLike)):
        model = get_model(model, pretrained=True, device=device)
    task = task_of(model._config)
    if task not in INFERENCE_FUNCTIONS:
        raise ValueError(f'inference_model supports {sorted(INFERENCE_FUNCTIONS)} models, '
                         f'not {task}')
    # In eval mode, as every task's inferencer must run, and then back in the caller's.
    was_training = model.training
    model.eval()
    try:
        results = INFERENCE_FUNCTIONS[task](model, batch, **kwargs)
    finally:
        model.train(was_training)
    return results[0] if single else results
