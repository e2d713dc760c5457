"""The image, segmentation and detection demos on wrong input: a model of another task, no
weights to load, an --out-file that is no image. One-line errors a command-line user can
act on, no tracebacks."""
import importlib
import subprocess
import sys
from typing import Union

import pytest
import torch

from mmtwins.apis import ModelZoo, model_zoo
from tests.helpers import REPO_ROOT

DEMO_IMAGE = str(REPO_ROOT / 'demo/grace_hopper.jpg')
# A model of each task, given by zoo name or by config file.
MODELS = {
    'classification': 'svt-s_8xb128_in1k',
    'segmentation': str(REPO_ROOT / 'configs/davit/upernet_davit-t_8xb2-160k_ade20k-512x512.py'),
    'detection': 'mask-rcnn_svt-s_fpn_1x_coco',
}
DEMOS = {'classification': 'image_demo', 'segmentation': 'seg_demo', 'detection': 'det_demo'}


@pytest.fixture
def demo(monkeypatch):
    """Imports a demo script as Python runs it: its folder first on ``sys.path``."""
    monkeypatch.syspath_prepend(str(REPO_ROOT / 'demo'))
    return lambda task: importlib.import_module(DEMOS[task])


def exit_message(demo_module, *argv: str) -> Union[str, int]:
    """What ``sys.exit`` of the demo's ``main`` says (argparse: the status); it must exit."""
    with pytest.raises(SystemExit) as exit_info:
        demo_module.main(list(argv))
    return exit_info.value.code


@pytest.mark.parametrize('demo_task, model_task', [
    (demo_task, model_task) for demo_task in DEMOS for model_task in DEMOS
    if demo_task != model_task])
def test_a_model_of_another_task_names_its_demo(demo, demo_task, model_task, monkeypatch):
    demo_module = demo(demo_task)

    def build(*args, **kwargs):
        raise AssertionError('told from the config: no model is built, no weights read')

    monkeypatch.setattr(importlib.import_module('demo_utils'), 'get_model', build)
    message = exit_message(demo_module, DEMO_IMAGE, MODELS[model_task],
                           '--checkpoint', 'weights.pth')
    assert message == (f'error: {MODELS[model_task]} is a {model_task} model; '
                       f'use demo/{DEMOS[model_task]}.py')


def test_seg_demo_given_a_detector_says_so_without_traceback():
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / 'demo/seg_demo.py'), DEMO_IMAGE,
         str(REPO_ROOT / 'configs/twins/mask-rcnn_svt-s_fpn_1x_coco.py'),
         '--checkpoint', 'weights.pth'], capture_output=True, text=True)
    assert result.returncode == 1
    assert 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f'error: {REPO_ROOT}/configs/twins/mask-rcnn_svt-s_fpn_1x_coco.py is a detection '
        f'model; use demo/det_demo.py')


def test_no_published_weights_asks_for_checkpoint(demo):
    message = exit_message(demo('segmentation'), DEMO_IMAGE, MODELS['segmentation'])
    assert message == (f'error: {MODELS["segmentation"]} has no published weights; give a '
                       f'weight file with --checkpoint FILE')


def test_no_network_asks_for_checkpoint(demo, monkeypatch):
    monkeypatch.setattr(model_zoo, '_can_download', lambda url: False)
    monkeypatch.setattr(model_zoo, '_downloaded_path', lambda url: '/nonexistent')
    message = exit_message(demo('classification'), DEMO_IMAGE, 'twins_svt_small')
    file_name = ModelZoo.get('svt-s_8xb128_in1k').weights.rsplit('/', 1)[1]
    assert message.startswith('error: cannot download the weights of svt-s_8xb128_in1k')
    assert message.endswith(f'no network. Download the file elsewhere, then give it with '
                            f'--checkpoint /path/to/{file_name}')
    assert 'pretrained' not in message


@pytest.mark.parametrize('task', DEMOS)
@pytest.mark.parametrize('out_file', ['result.txt', 'result'])
def test_out_file_must_be_an_image_file(demo, task, out_file, capsys, tmp_path):
    out_path = str(tmp_path / out_file)
    status = exit_message(demo(task), DEMO_IMAGE, MODELS[task], '--out-file', out_path)
    assert status == 2  # argparse's, before any model is built
    assert (f"error: argument --out-file: cannot write an image to {out_path!r}; use an "
            f"image extension such as .png or .jpg") in capsys.readouterr().err


@pytest.mark.parametrize('task', DEMOS)
def test_out_file_folder_is_checked_before_the_model_is_built(demo, task, capsys, tmp_path):
    (tmp_path / 'notes').write_text('')
    out_path = str(tmp_path / 'notes' / 'drawn' / 'result.png')
    assert exit_message(demo(task), DEMO_IMAGE, MODELS[task], '--out-file', out_path) == 2
    assert (f"error: argument --out-file: cannot write {out_path!r}: "
            f"{str(tmp_path / 'notes')!r} is a file, not a folder") in capsys.readouterr().err


@pytest.mark.parametrize('task', DEMOS)
@pytest.mark.parametrize('device, message', [
    ('gpu', 'argument --device: Expected one of cpu, cuda'),
    pytest.param('cuda:0', 'argument --device: cuda:0: no CUDA device here; use cpu',
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason='has CUDA')),
])
def test_device_is_checked_before_the_model_is_built(demo, task, device, message, capsys):
    assert exit_message(demo(task), DEMO_IMAGE, MODELS[task], '--device', device) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize('topk', ['0', '-1', 'five'])
def test_topk_is_a_positive_count(demo, topk, capsys):
    assert exit_message(demo('classification'), DEMO_IMAGE, MODELS['classification'],
                        '--topk', topk) == 2
    assert f"argument --topk: {topk!r} is not a whole number of at least 1" in \
        capsys.readouterr().err
