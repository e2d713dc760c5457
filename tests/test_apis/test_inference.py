"""inference_model on files, arrays and lists, as mmpretrain returns results; the demo."""
import re
import subprocess
import sys

import mmcv
import numpy as np
import pytest
import torch

from mmtwins import inference_model
from mmtwins.apis import get_model
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


def test_bad_images_are_named(tiny_davit):
    with pytest.raises(FileNotFoundError, match="image file 'no/such.jpg' does not exist"):
        inference_model(tiny_davit, ['no/such.jpg'])
    with pytest.raises(TypeError, match='file path or a numpy array'):
        inference_model(tiny_davit, 42)


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
