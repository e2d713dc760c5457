"""inference_model on files, arrays and lists, as mmpretrain returns results; the demo."""
import re
import subprocess
import sys
from pathlib import Path

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmtwins import inference_model
from mmtwins.apis import get_model
from mmtwins.apis.inference import draw_classes, top_classes
from tests.helpers import REPO_ROOT, TINY_DAVIT

DEMO_IMAGE = str(REPO_ROOT / 'demo/grace_hopper.jpg')


@pytest.fixture(scope='module')
def tiny_davit():
    return get_model('davit-t_4xb256_in1k',
                     backbone=dict(arch=dict(_delete_=True, **TINY_DAVIT)),
                     neck=dict(in_channels=64), head=dict(in_channels=64))


def test_file_array_and_list_give_mmpretrain_results(tiny_davit):
    from_file = inference_model(tiny_davit, DEMO_IMAGE)
    assert set(from_file) == {'pred_label', 'pred_score', 'pred_scores', 'pred_class'}
    assert from_file['pred_scores'].shape == (1000, )
    assert from_file['pred_score'] == pytest.approx(from_file['pred_scores'].max())
    assert from_file['pred_class'] == tiny_davit._dataset_meta['classes'][from_file['pred_label']]

    from_array = inference_model(tiny_davit, mmcv.imread(DEMO_IMAGE))
    np.testing.assert_allclose(from_array['pred_scores'], from_file['pred_scores'], atol=1e-6)

    flipped = mmcv.imread(DEMO_IMAGE)[:, ::-1].copy()
    results = inference_model(tiny_davit, [DEMO_IMAGE, flipped])
    assert isinstance(results, list) and len(results) == 2
    np.testing.assert_allclose(results[0]['pred_scores'], from_file['pred_scores'], atol=1e-6)
    assert not np.allclose(results[1]['pred_scores'], from_file['pred_scores'])


def test_out_file_draws_the_best_classes(tiny_davit, tmp_path):
    """As for segmentation and detection (mmpretrain's inferencer refused out_file); the
    picture is the demo's, and an unwritable name is refused before inference."""
    image = mmcv.imread(DEMO_IMAGE)
    out_files = [tmp_path / 'file.png', tmp_path / 'array.png']
    results = inference_model(tiny_davit, [DEMO_IMAGE, image], out_file=out_files)
    assert np.array_equal(image, mmcv.imread(DEMO_IMAGE))  # the caller's array unchanged
    best = top_classes(results[0]['pred_scores'], tiny_davit._dataset_meta['classes'])
    assert [name for name, _ in best][0] == results[0]['pred_class'] and len(best) == 5
    draw_classes(DEMO_IMAGE, best, str(tmp_path / 'expected.png'))
    expected = mmcv.imread(tmp_path / 'expected.png')
    assert not np.array_equal(expected, image)
    for path in out_files:
        np.testing.assert_array_equal(mmcv.imread(path), expected)
    samples = inference_model(tiny_davit, DEMO_IMAGE, out_file=tmp_path / 'sample.png',
                              return_datasamples=True)
    np.testing.assert_array_equal(mmcv.imread(tmp_path / 'sample.png'), expected)
    assert samples.pred_label.item() == results[0]['pred_label']
    with pytest.raises(ValueError, match=r"out_file: cannot write an image to '.*scores'; "):
        inference_model(tiny_davit, DEMO_IMAGE, out_file=tmp_path / 'scores')


def test_a_config_with_only_a_test_pipeline_reads_images_with_it(tiny_davit, tmp_path):
    """As segmentation does (and mmseg's inference_model); mmpretrain's inferencer failed
    with an AttributeError on test_dataloader. Neither is a ValueError naming the config."""
    expected = inference_model(tiny_davit, DEMO_IMAGE)['pred_scores']
    config = tiny_davit._config
    settings = config.to_dict()
    settings['test_pipeline'] = settings.pop('test_dataloader')['dataset']['pipeline']
    (tmp_path / 'only_test_pipeline.py').touch()
    (tmp_path / 'no_pipeline.py').touch()
    try:
        tiny_davit._config = Config(settings, filename=tmp_path / 'only_test_pipeline.py')
        np.testing.assert_allclose(inference_model(tiny_davit, DEMO_IMAGE)['pred_scores'],
                                   expected, atol=1e-6)
        del settings['test_pipeline']
        tiny_davit._config = Config(settings, filename=tmp_path / 'no_pipeline.py')
        with pytest.raises(ValueError, match=r"no_pipeline.py has no test pipeline "
                           r"\(test_dataloader.dataset.pipeline or test_pipeline\)"):
            inference_model(tiny_davit, DEMO_IMAGE)
    finally:
        tiny_davit._config = config


def test_bad_images_are_named(tiny_davit):
    with pytest.raises(FileNotFoundError, match="image file 'no/such.jpg' does not exist"):
        inference_model(tiny_davit, ['no/such.jpg'])
    with pytest.raises(FileNotFoundError, match="image file 'no/such.jpg' does not exist"):
        inference_model(tiny_davit, Path('no/such.jpg'))
    with pytest.raises(TypeError, match='file path or a numpy array'):
        inference_model(tiny_davit, 42)


@pytest.mark.parametrize('content, name', [(b'', 'empty.jpg'), (b'not an image', 'notes.png'),
                                           (None, 'truncated.jpg')])
def test_a_file_that_does_not_decode_is_named(tiny_davit, tmp_path, content, name):
    if content is None:
        content = Path(DEMO_IMAGE).read_bytes()[:200]  # the header, no image data
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError, match=f"cannot read an image from '.*{name}': empty, "
                       f"truncated or not an image file"):
        inference_model(tiny_davit, str(tmp_path / name))


def test_a_folder_is_refused_with_a_glob_to_use(tiny_davit, tmp_path):
    with pytest.raises(ValueError, match=r"is a folder; pass image files, e\.g\. "
                       r"sorted\(glob\.glob\('.*\*\.jpg'\)\)"):
        inference_model(tiny_davit, tmp_path)


@pytest.mark.parametrize('dtype', [np.float32, np.uint16, bool])
def test_an_array_of_another_type_than_uint8_is_refused(tiny_davit, dtype):
    # Segmentors and detectors predicted on the raw values (floats in [0, 1], 16 bits).
    image = mmcv.imread(DEMO_IMAGE).astype(dtype)
    with pytest.raises(ValueError, match=f'must be uint8 .* not {np.dtype(dtype)}; convert'):
        inference_model(tiny_davit, image)


def test_inference_runs_in_eval_mode_and_keeps_the_callers_mode(tiny_davit):
    tiny_davit.train()
    try:
        in_train_mode = inference_model(tiny_davit, DEMO_IMAGE)
        assert tiny_davit.training
    finally:
        tiny_davit.eval()
    np.testing.assert_array_equal(in_train_mode['pred_scores'],
                                  inference_model(tiny_davit, DEMO_IMAGE)['pred_scores'])
    assert not tiny_davit.training


def test_path_objects_are_file_paths(tiny_davit):
    from_str = inference_model(tiny_davit, DEMO_IMAGE)
    from_path = inference_model(tiny_davit, Path(DEMO_IMAGE))
    np.testing.assert_array_equal(from_path['pred_scores'], from_str['pred_scores'])
    (listed, ) = inference_model(tiny_davit, [Path(DEMO_IMAGE)])
    np.testing.assert_array_equal(listed['pred_scores'], from_str['pred_scores'])


def test_an_alpha_channel_is_refused_with_the_expected_shape(tiny_davit):
    bgra = np.dstack([mmcv.imread(DEMO_IMAGE), np.full((600, 512), 255, np.uint8)])
    with pytest.raises(ValueError, match=r'must have shape \(H, W, 3\) in BGR order.*got '
                       r'shape \(600, 512, 4\).*cv2.COLOR_BGRA2BGR'):
        inference_model(tiny_davit, [mmcv.imread(DEMO_IMAGE), bgra])


def test_a_grey_array_is_read_as_its_file_is(tiny_davit, tmp_path):
    grey = mmcv.imread(DEMO_IMAGE, flag='grayscale')
    mmcv.imwrite(grey, str(tmp_path / 'grey.png'))
    from_file = inference_model(tiny_davit, str(tmp_path / 'grey.png'))['pred_scores']
    for array in (grey, grey[..., None]):
        np.testing.assert_allclose(inference_model(tiny_davit, array)['pred_scores'],
                                   from_file, atol=1e-6)


def test_mmpretrain_inferencer_arguments(tiny_davit, tmp_path):
    """The arguments the docstring names reach mmpretrain's inferencer (and topk does not
    exist there)."""
    images = [DEMO_IMAGE, mmcv.imread(DEMO_IMAGE)[:, ::-1].copy()]
    one_by_one = inference_model(tiny_davit, images)
    batched = inference_model(tiny_davit, images, batch_size=2, show_dir=str(tmp_path))
    for single, in_batch in zip(one_by_one, batched):
        np.testing.assert_allclose(in_batch['pred_scores'], single['pred_scores'], atol=1e-5)
    assert {path.name for path in tmp_path.iterdir()} == {'grace_hopper.png', '1.png'}
    samples = inference_model(tiny_davit, images, return_datasamples=True)
    torch.testing.assert_close(samples[0].pred_score.numpy(), one_by_one[0]['pred_scores'])
    with pytest.raises(ValueError, match='topk'):
        inference_model(tiny_davit, DEMO_IMAGE, topk=3)


def test_a_config_in_the_mmtwins_scope(tmp_path):
    """docs/get_started.md: a config with default_scope='mmtwins' whose model resolves in
    mmpretrain by its _scope_ predicts as the mmpretrain-scoped config it inherits."""
    quickstart = REPO_ROOT / 'configs/quickstart/twins-svt-tiny_1xb64_digits.py'
    scoped = tmp_path / 'scoped.py'
    scoped.write_text(f"_base_ = [{str(quickstart)!r}]\n"
                      f"default_scope = 'mmtwins'\n"
                      f"model = dict(_scope_='mmpretrain')\n")
    torch.manual_seed(0)
    model = get_model(str(scoped))
    reference = get_model(str(quickstart))
    reference.load_state_dict(model.state_dict())
    result = inference_model(model, DEMO_IMAGE)
    assert result['pred_scores'].shape == (10, )
    np.testing.assert_allclose(result['pred_scores'],
                               inference_model(reference, DEMO_IMAGE)['pred_scores'],
                               atol=1e-6)


def test_quickstart_model_batches_images_of_any_size():
    """The quickstart's test pipeline resizes to its 32 x 32 digits: images of other sizes
    batch together (mmpretrain's collate stacked 32 x 32 with 40 x 48 before) and score as
    when resized first."""
    torch.manual_seed(0)
    model = get_model(str(REPO_ROOT / 'configs/quickstart/twins-svt-tiny_1xb64_digits.py'))
    images = [np.random.default_rng(seed).integers(0, 256, shape, np.uint8)
              for seed, shape in enumerate([(32, 32, 3), (40, 48, 3)])]
    batched = inference_model(model, images, batch_size=2)
    for image, in_batch in zip(images, batched):
        resized = mmcv.imresize(image, (32, 32))
        np.testing.assert_allclose(in_batch['pred_scores'],
                                   inference_model(model, resized)['pred_scores'], atol=1e-6)


def test_image_demo_prints_and_draws_the_top_classes(tmp_path):
    checkpoint = tmp_path / 'weights.pth'
    torch.save({'state_dict': get_model('svt-s_8xb128_in1k').state_dict()}, checkpoint)
    out_file = tmp_path / 'drawn.jpg'
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / 'demo/image_demo.py'), DEMO_IMAGE, 'svt-s_8xb128_in1k',
         '--checkpoint', str(checkpoint), '--topk', '3', '--out-file', str(out_file)],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    # mmpretrain's progress bar may end without a newline in captured output.
    ranks = re.findall(r'([1-9])\. [^\n]+: \d\.\d{4}$', result.stdout, flags=re.MULTILINE)
    assert ranks == ['1', '2', '3']
    drawn, original = mmcv.imread(str(out_file)), mmcv.imread(DEMO_IMAGE)
    assert drawn.shape == original.shape and not np.array_equal(drawn, original)
