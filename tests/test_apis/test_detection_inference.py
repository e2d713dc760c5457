"""inference_model on detectors: boxes, scores, labels and masks, drawn images; the demo;
whole official-format detector checkpoints."""
import json

import mmcv
import numpy as np
import pytest
import timm
import torch
from mmdet.structures.bbox import bbox_overlaps

from mmtwins import inference_model
from mmtwins.apis import get_model
from tests.helpers import TINY_SVT, python_tool, run_tool
from tests.test_tools.detection_helpers import (CATEGORIES, IMAGE_SIZE, TRAINED_CONFIGS,
                                                tiny_detection_config)

CLASS_NAMES = [name for name, _ in CATEGORIES.values()]


@pytest.fixture(scope='module')
def detectors(trained_detectors):
    return {kind: get_model(str(trained.config), pretrained=str(trained.checkpoint))
            for kind, trained in trained_detectors.items()}


@pytest.fixture(scope='module')
def validation(tiny_coco):
    """(image path, ground-truth boxes as x1 y1 x2 y2, category names) of the first image."""
    annotations = json.loads(
        (tiny_coco / 'annotations' / 'instances_val2017.json').read_text())
    image = annotations['images'][0]
    objects = [a for a in annotations['annotations'] if a['image_id'] == image['id']]
    boxes = np.array([a['bbox'] for a in objects])
    boxes[:, 2:] += boxes[:, :2]
    names = [CATEGORIES[a['category_id']][0] for a in objects]
    return str(tiny_coco / 'val2017' / image['file_name']), boxes, names


@pytest.fixture(scope='module')
def untrained_detector(tmp_path_factory):
    """A tiny Mask R-CNN with random weights: its detections differ from image to image."""
    folder = tmp_path_factory.mktemp('untrained')
    config = folder / 'tiny_mask_rcnn.py'
    config.write_text(tiny_detection_config(TRAINED_CONFIGS['mask-rcnn'], TINY_SVT, folder, 1))
    torch.manual_seed(0)
    return get_model(str(config))


def test_a_grey_array_is_read_as_its_file_is(untrained_detector, validation, tmp_path):
    """The detectors fail on a one-channel array; inference_model makes it BGR."""
    grey = mmcv.imread(validation[0], flag='grayscale')
    mmcv.imwrite(grey, str(tmp_path / 'grey.png'))
    from_file = inference_model(untrained_detector, str(tmp_path / 'grey.png'))
    assert len(from_file['scores']) > 0
    for array in (grey, grey[..., None]):
        result = inference_model(untrained_detector, array)
        np.testing.assert_allclose(result['bboxes'], from_file['bboxes'], atol=1e-4)
        np.testing.assert_array_equal(result['labels'], from_file['labels'])


def test_out_file_without_an_image_extension_is_refused(untrained_detector, validation,
                                                        tmp_path):
    with pytest.raises(ValueError, match=r"out_file: cannot write an image to '.*boxes'; "):
        inference_model(untrained_detector, validation[0], out_file=str(tmp_path / 'boxes'))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize('kind', ['mask-rcnn', 'retinanet'])
def test_detections_of_each_image(detectors, validation, kind):
    result = inference_model(detectors[kind], validation[0])
    expected_keys = {'bboxes', 'scores', 'labels', 'label_names'}
    assert set(result) == expected_keys | ({'masks'} if kind == 'mask-rcnn' else set())
    count = len(result['scores'])
    assert 0 < count <= 100 and result['bboxes'].shape == (count, 4)
    assert np.all(np.diff(result['scores']) <= 0)  # best first
    assert result['label_names'] == [CLASS_NAMES[label] for label in result['labels']]


def test_best_detections_find_the_objects(detectors, validation):
    """The trained RetinaNet (the detector that learns in a test's budget) finds both."""
    image, truth_boxes, truth_names = validation
    result = inference_model(detectors['retinanet'], image)
    for truth_box, name in zip(truth_boxes, truth_names):
        # the best detection of this class is on the object
        best = result['label_names'].index(name)
        iou = bbox_overlaps(torch.from_numpy(result['bboxes'][best:best + 1]),
                            torch.tensor(truth_box[None], dtype=torch.float32))
        assert iou.item() > 0.5


def test_masks_at_the_image_size(detectors, validation):
    image, truth_boxes, _ = validation
    result = inference_model(detectors['mask-rcnn'], image)
    masks = result['masks']
    assert masks.dtype == bool and masks.shape == (len(result['bboxes']), *IMAGE_SIZE)
    # the best mask lies inside its box (a pixel of margin)
    x1, y1, x2, y2 = result['bboxes'][0]
    rows, columns = np.nonzero(masks[0])
    assert rows.min() >= y1 - 1 and rows.max() <= y2 + 1
    assert columns.min() >= x1 - 1 and columns.max() <= x2 + 1


def test_file_array_and_list(detectors, validation):
    image = validation[0]
    from_file = inference_model(detectors['retinanet'], image)
    results = inference_model(detectors['retinanet'], [mmcv.imread(image), image])
    assert isinstance(results, list) and len(results) == 2
    for result in results:
        np.testing.assert_allclose(result['bboxes'], from_file['bboxes'], atol=1e-4)
        np.testing.assert_array_equal(result['labels'], from_file['labels'])


def test_drawn_image(detectors, validation, tmp_path):
    image = validation[0]
    inference_model(detectors['mask-rcnn'], image, out_file=str(tmp_path / 'drawn.png'))
    drawn = mmcv.imread(str(tmp_path / 'drawn.png'))
    assert drawn.shape == (*IMAGE_SIZE, 3)
    assert not np.array_equal(drawn, mmcv.imread(image))
    with pytest.raises(ValueError, match='one path per image'):
        inference_model(detectors['mask-rcnn'], [image, image], out_file=['a.png'])


def test_demo_prints_and_draws(trained_detectors, validation, tmp_path):
    trained = trained_detectors['retinanet']
    result = python_tool('../demo/det_demo.py', validation[0], str(trained.config),
                         '--checkpoint', str(trained.checkpoint),
                         '--out-file', str(tmp_path / 'demo.jpg'))
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert {line.split()[0] for line in lines[:-1]} >= set(validation[2])
    assert lines[-1] == f'saved {tmp_path / "demo.jpg"}'
    assert (tmp_path / 'demo.jpg').is_file()


def test_demo_names_a_missing_image(trained_detectors, tmp_path):
    trained = trained_detectors['retinanet']
    result = run_tool('python', 'demo/det_demo.py', str(tmp_path / 'none.jpg'),
                      str(trained.config), '--checkpoint', str(trained.checkpoint))
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert 'none.jpg' in result.stderr


def test_whole_official_format_detector_checkpoint_loads(trained_detectors, tmp_path):
    """An mmdet Mask R-CNN file whose backbone has the official Twins-SVT detection keys
    (``backbone.patch_embeds...``, ``backbone.norm_list...``) loads whole."""
    config = str(trained_detectors['mask-rcnn'].config)
    official = timm.create_model(
        'twins_svt_small', num_classes=0, embed_dims=TINY_SVT['embed_dims'],
        depths=TINY_SVT['depths'], num_heads=TINY_SVT['num_heads'],
        mlp_ratios=TINY_SVT['mlp_ratios'])
    state_dict = {f'backbone.{k}': v for k, v in official.state_dict().items()
                  if not k.startswith('norm.')}
    for index, dims in enumerate(TINY_SVT['embed_dims']):
        state_dict[f'backbone.norm_list.{index}.weight'] = torch.rand(dims)
        state_dict[f'backbone.norm_list.{index}.bias'] = torch.rand(dims)
    torch.manual_seed(0)
    heads = {k: torch.rand_like(v) for k, v in get_model(config).state_dict().items()
             if not k.startswith('backbone.')}
    torch.save(dict(state_dict={**state_dict, **heads}), tmp_path / 'official_mask_rcnn.pth')

    detector = get_model(config, pretrained=str(tmp_path / 'official_mask_rcnn.pth'))
    stages = detector.backbone.stages
    torch.testing.assert_close(stages[0].patch_embed.proj.weight,
                               official.patch_embeds[0].proj.weight)
    torch.testing.assert_close(stages[3].pos_enc.proj.weight,
                               official.pos_block[3].proj[0].weight)
    torch.testing.assert_close(stages[2].norm.bias, state_dict['backbone.norm_list.2.bias'])
    ours = detector.state_dict()
    for key, value in heads.items():
        torch.testing.assert_close(ours[key], value)
