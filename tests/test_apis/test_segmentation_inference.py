"""inference_model on segmentors: label maps at the image size, logits, overlays; the demo."""
import os
import subprocess
import sys

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmtwins import inference_model
from mmtwins.apis import get_model
from tests.helpers import REPO_ROOT, TINY_DAVIT
from tests.test_tools.segmentation_helpers import (IMAGE_SIZE, tiny_segmentation_config,
                                                   write_ade20k)

DAVIT_UPERNET = 'configs/davit/upernet_davit-t_8xb2-160k_ade20k-512x512.py'


@pytest.fixture(scope='module')
def image(tmp_path_factory) -> str:
    data_root = write_ade20k(tmp_path_factory.mktemp('ade'), train_images=0, val_images=1)
    return str(next((data_root / 'images' / 'validation').glob('*.jpg')))


@pytest.fixture(scope='module')
def tiny_config(tmp_path_factory) -> str:
    """A tiny DaViT UperNet (random weights), testing at 64 x 77: no multiple of 32."""
    folder = tmp_path_factory.mktemp('config')
    config = folder / 'tiny_davit_upernet.py'
    config.write_text(tiny_segmentation_config(DAVIT_UPERNET, TINY_DAVIT, folder, 1))
    return str(config)


@pytest.fixture(scope='module')
def segmentor(tiny_config):
    torch.manual_seed(0)
    return get_model(tiny_config)


def test_label_map_and_logits_at_the_image_size(segmentor, image):
    result = inference_model(segmentor, image, return_logits=True)
    assert set(result) == {'pred_label_map', 'logits'}
    assert result['pred_label_map'].shape == IMAGE_SIZE
    assert np.issubdtype(result['pred_label_map'].dtype, np.integer)
    assert result['logits'].shape == (150, *IMAGE_SIZE)
    np.testing.assert_array_equal(result['pred_label_map'], result['logits'].argmax(0))
    assert set(inference_model(segmentor, image)) == {'pred_label_map'}


def test_file_array_and_list(segmentor, image):
    from_file = inference_model(segmentor, image)['pred_label_map']
    flipped = mmcv.imread(image)[:, ::-1].copy()
    results = inference_model(segmentor, [mmcv.imread(image), flipped, image])
    assert isinstance(results, list) and len(results) == 3
    np.testing.assert_array_equal(results[0]['pred_label_map'], from_file)
    np.testing.assert_array_equal(results[2]['pred_label_map'], from_file)
    assert not np.array_equal(results[1]['pred_label_map'], from_file)


def test_a_model_in_train_mode_predicts_in_eval_mode_and_stays_in_train_mode(segmentor,
                                                                            image):
    # UperNet's pooling branch has BatchNorm over 1 x 1 maps: in train mode it raised.
    expected = inference_model(segmentor, image)['pred_label_map']
    segmentor.train()
    try:
        np.testing.assert_array_equal(inference_model(segmentor, image)['pred_label_map'],
                                      expected)
        assert segmentor.training
    finally:
        segmentor.eval()


def test_a_config_with_only_a_test_pipeline_reads_images_with_it(segmentor, image):
    # As mmseg's inference_model reads it; an AttributeError on test_dataloader before.
    expected = inference_model(segmentor, image)['pred_label_map']
    config = segmentor._config
    settings = config.to_dict()
    del settings['test_dataloader']
    segmentor._config = Config(settings)
    try:
        np.testing.assert_array_equal(inference_model(segmentor, image)['pred_label_map'],
                                      expected)
    finally:
        segmentor._config = config


def test_sliding_window_over_the_whole_image_is_whole_inference(segmentor, tiny_config,
                                                                 image):
    whole = inference_model(segmentor, image, return_logits=True)['logits']

    def windowed(crop: int, stride: int) -> np.ndarray:
        model = get_model(tiny_config, test_cfg=dict(mode='slide', crop_size=(crop, crop),
                                                     stride=(stride, stride)))
        model.load_state_dict(segmentor.state_dict())
        return inference_model(model, image, return_logits=True)['logits']

    np.testing.assert_allclose(windowed(128, 64), whole, atol=1e-5)  # one window: all of it
    overlapping = windowed(48, 32)
    assert overlapping.shape == whole.shape and not np.allclose(overlapping, whole, atol=1e-3)


def test_overlay_is_painted_over_the_image(segmentor, image, tmp_path):
    out_files = [str(tmp_path / 'from_file.png'), str(tmp_path / 'from_array.png')]
    inference_model(segmentor, [image, mmcv.imread(image)], out_file=out_files)
    original = mmcv.imread(image)
    painted = [mmcv.imread(path) for path in out_files]
    assert painted[0].shape == original.shape and not np.array_equal(painted[0], original)
    np.testing.assert_array_equal(painted[0], painted[1])
    with pytest.raises(ValueError, match='one path per image, got 1 paths for 2 images'):
        inference_model(segmentor, [image, image], out_file=[out_files[0]])


def test_out_file_is_checked_before_inference(segmentor, image, tmp_path, monkeypatch):
    import mmseg.apis
    monkeypatch.setattr(mmseg.apis, 'inference_model', None)  # fails if called
    with pytest.raises(ValueError, match=r"out_file: cannot write an image to "
                       r"'.*overlay.txt'; use an image extension such as .png or .jpg"):
        inference_model(segmentor, [image, image],
                        out_file=[str(tmp_path / 'a.png'), str(tmp_path / 'overlay.txt')])
    assert list(tmp_path.iterdir()) == []


def test_out_file_folder_is_checked_before_inference(segmentor, image, tmp_path,
                                                     monkeypatch):
    import mmseg.apis
    monkeypatch.setattr(mmseg.apis, 'inference_model', None)  # fails if called
    monkeypatch.setattr(os, 'access', lambda path, mode: path != str(tmp_path / 'locked'))
    (tmp_path / 'locked').mkdir()
    with pytest.raises(ValueError, match=r"out_file: cannot write '.*locked/new/b.png': no "
                       r"permission to write in '.*locked'$"):
        inference_model(segmentor, [image, image],
                        out_file=[str(tmp_path / 'a.png'), tmp_path / 'locked/new/b.png'])
    monkeypatch.undo()
    # A missing folder is fine: it is created when the image is written.
    inference_model(segmentor, image, out_file=tmp_path / 'new' / 'deeper' / 'a.png')
    assert (tmp_path / 'new' / 'deeper' / 'a.png').is_file()


def test_out_file_may_be_a_path_object(segmentor, image, tmp_path):
    inference_model(segmentor, image, out_file=tmp_path / 'overlay.png')
    assert mmcv.imread(str(tmp_path / 'overlay.png')).shape == mmcv.imread(image).shape


def test_seg_demo_prints_classes_and_saves_the_overlay(segmentor, tiny_config, image,
                                                       tmp_path):
    checkpoint = tmp_path / 'weights.pth'
    torch.save({'state_dict': segmentor.state_dict()}, checkpoint)
    out_file = tmp_path / 'overlay.png'
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / 'demo/seg_demo.py'), image, tiny_config,
         '--checkpoint', str(checkpoint), '--out-file', str(out_file)],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = inference_model(segmentor, image)['pred_label_map']
    classes = segmentor._dataset_meta['classes']
    shares = [line for line in result.stdout.splitlines() if line.endswith('%')]
    assert len(shares) == len(np.unique(expected))
    assert shares[0].startswith(f'{classes[np.bincount(expected.ravel()).argmax()]}: ')
    assert mmcv.imread(str(out_file)).shape == mmcv.imread(image).shape
