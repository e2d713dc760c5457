"""Bad input ends with an error that names the problem, or, for a few unreadable training
images, is skipped and counted; a weight file carrying pickled code is refused unrun.

Every case of the reliability issue runs the real tools or the real config pipelines on a
tiny dataset and model."""
import importlib.util
import logging
import os
import re
import traceback
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope
from mmpretrain.registry import DATASETS
from PIL import Image

from mmtwins.apis import get_model
from mmtwins.datasets import ImageLoadError, SafeLoadImageFromFile
from tests.helpers import (REPO_ROOT, TINY_DAVIT, TINY_PCPVT, TINY_SVT, failure_report,
                           python_tool, tiny_classification_config, write_colour_classes)
from tests.test_tools.detection_helpers import TRAINED_CONFIGS, tiny_detection_config
from tests.test_tools.segmentation_helpers import tiny_segmentation_config, write_ade20k

TWINS_CONFIG = 'configs/twins/svt-s_8xb128_in1k.py'
DAVIT_CONFIG = 'configs/davit/davit-t_4xb256_in1k.py'


def load_tool(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def exit_message(tool: str, *argv: str) -> str:
    """The message a tool ends with (``sys.exit('error: ...')``), run in this process."""
    with pytest.raises(SystemExit) as exit_info:
        load_tool(tool).main(list(argv))
    return str(exit_info.value.code)


def write_tiny_config(folder: Path, data_root: Path, base: str = TWINS_CONFIG,
                      arch: dict = TINY_SVT) -> Path:
    config = folder / 'tiny.py'
    config.write_text(tiny_classification_config(base, arch, data_root))
    return config


def build_dataset(config: Path, split: str):
    cfg = Config.fromfile(str(config))
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return DATASETS.build(cfg[f'{split}_dataloader'].dataset)


def load_image(path: Path, **kwargs):
    return SafeLoadImageFromFile(**kwargs)(dict(img_path=str(path)))


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """``train/`` and ``val/`` of two classes; ``train/red/0.png`` is truncated."""
    write_colour_classes(tmp_path / 'train', 4)
    write_colour_classes(tmp_path / 'val', 2)
    truncated = tmp_path / 'train' / 'red' / '0.png'
    truncated.write_bytes(truncated.read_bytes()[:truncated.stat().st_size // 2])
    return tmp_path


# Missing data, malformed configs, out-of-range options, unknown names.


def test_missing_dataset_folder_is_named(colour_dataset, tmp_path):
    config = write_tiny_config(tmp_path, colour_dataset)
    message = exit_message('train', str(config), '--work-dir', str(tmp_path / 'work'),
                           '--cfg-options', f'val_dataloader.dataset.data_root={tmp_path}/nope')
    assert f"data_root '{tmp_path}/nope' does not exist" in message


def test_missing_annotation_file_is_named(colour_dataset, tmp_path):
    config = write_tiny_config(tmp_path, colour_dataset)
    message = exit_message('train', str(config), '--work-dir', str(tmp_path / 'work'),
                           '--cfg-options', 'train_dataloader.dataset.ann_file=meta/train.txt')
    assert f"ann_file '{colour_dataset}/train/meta/train.txt' does not exist" in message


@pytest.mark.parametrize('tool, key', [('train', 'val_evaluator'), ('test', 'test_evaluator')])
def test_missing_evaluator_annotation_file_is_named(tiny_coco, tmp_path, tool, key):
    """COCO's metric reads its own ``ann_file``, otherwise only once datasets and model are
    built, with a bare FileNotFoundError."""
    config = tmp_path / 'tiny.py'
    config.write_text(tiny_detection_config(TRAINED_CONFIGS['retinanet'], TINY_PCPVT, tiny_coco,
                                            max_epochs=1))
    missing = tiny_coco / 'annotations' / 'missing.json'
    checkpoint = [str(tmp_path / 'epoch_1.pth')] if tool == 'test' else []
    message = exit_message(tool, str(config), *checkpoint, '--work-dir', str(tmp_path / 'work'),
                           '--cfg-options', f'{key}.ann_file={missing}')
    assert f"{key}.ann_file '{missing}' does not exist" in message
    assert 'docs/detection.md#prepare-coco' in message


@pytest.mark.parametrize('text, problem', [
    ('model = dict(type="ImageClassifier"\n', 'SyntaxError'),
    ("_base_ = ['./no_such_base.py']\n", 'no_such_base.py'),
])
def test_malformed_config_is_named(tmp_path, text, problem):
    config = tmp_path / 'broken.py'
    config.write_text(text)
    message = exit_message('train', str(config))
    assert f"config file '{config}' cannot be loaded" in message and problem in message


@pytest.mark.parametrize('option, message', [
    ('model.backbone.out_indices=(5,)', r'out_indices=\(5,\): 5 is out of range for 4 stages'),
    ('model.backbone.frozen_stages=9', r'frozen_stages=9 must be an int in \[-1, 4\]'),
])
def test_out_of_range_option_is_named(colour_dataset, tmp_path, option, message):
    config = write_tiny_config(tmp_path, colour_dataset)
    with pytest.raises(ValueError, match=message):
        load_tool('train').main([str(config), '--work-dir', str(tmp_path / 'work'),
                                 '--cfg-options', option])


def test_unknown_model_name_suggests_close_ones():
    with pytest.raises(ValueError, match=r"unknown model name 'svt-s_8xb128_in1'.*"
                                         r'Did you mean svt-s_8xb128_in1k'):
        get_model('svt-s_8xb128_in1')


# Checkpoints of another architecture.


@pytest.fixture
def davit_checkpoint(colour_dataset, tmp_path) -> Path:
    davit_config = tmp_path / 'davit' / 'tiny.py'
    davit_config.parent.mkdir()
    davit_config.write_text(tiny_classification_config(DAVIT_CONFIG, TINY_DAVIT, colour_dataset))
    path = tmp_path / 'davit.pth'
    torch.save({'state_dict': get_model(str(davit_config)).state_dict(), 'meta': {}}, path)
    return path


def test_test_tool_refuses_another_architecture_listing_the_keys(colour_dataset, tmp_path,
                                                                 davit_checkpoint):
    config = write_tiny_config(tmp_path, colour_dataset)
    listed = exit_message('test', str(config), str(davit_checkpoint),
                          '--work-dir', str(tmp_path / 'work'))
    assert listed.startswith(f'error: {davit_checkpoint} holds the weights of another '
                             f'architecture than the config\'s ImageClassifier with a '
                             f'TwinsSVT backbone: 283 backbone tensors do not fit:')
    assert ('backbone.stages.0.patch_embed.proj.weight: checkpoint (16, 3, 7, 7), '
            'model (16, 3, 4, 4)') in listed
    assert 'backbone.stages.0.blocks.0.channel.attn.qkv.weight: not in the model' in listed
    # Ten lines of each kind, not all 283.
    assert '\n  ... and 150 more not in the model\n' in listed
    assert listed.endswith('\n  ... and 106 more not in the checkpoint')
    assert len(listed.splitlines()) == 1 + 7 + 11 + 11



def weights_of(arch: dict, data_root: Path, folder: Path) -> Path:
    """A checkpoint of the tiny SVT classifier with ``arch``."""
    folder.mkdir()
    model = get_model(str(write_tiny_config(folder, data_root, arch=arch)))
    path = folder / 'weights.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return path


def test_test_tool_refuses_a_deeper_model_of_the_same_widths(colour_dataset, tmp_path):
    deeper = weights_of(dict(TINY_SVT, depths=(2, 2, 2, 3)), colour_dataset, tmp_path / 'deep')
    config = write_tiny_config(tmp_path, colour_dataset)
    listed = exit_message('test', str(config), str(deeper), '--work-dir', str(tmp_path / 'w'))
    assert listed.startswith(f'error: {deeper} holds the weights of another architecture')
    assert 'backbone.stages.3.blocks.2.attn.qkv.weight: not in the model' in listed


def test_resume_refuses_a_checkpoint_that_leaves_weights_unset(colour_dataset, tmp_path):
    shallower = weights_of(dict(TINY_SVT, depths=(2, 2, 2, 1)), colour_dataset,
                           tmp_path / 'shallow')
    config = write_tiny_config(tmp_path, colour_dataset)
    listed = exit_message('train', str(config), '--resume', str(shallower),
                          '--work-dir', str(tmp_path / 'w'))
    assert listed.startswith(f'error: {shallower} cannot be resumed with the config')
    assert 'backbone.stages.3.blocks.1.attn.qkv.weight: not in the checkpoint' in listed


def checkpoint_with_another_head(config: Path, folder: Path, change_head) -> Path:
    weights = get_model(str(config)).state_dict()
    change_head(weights)
    checkpoint = folder / 'other_head.pth'
    torch.save({'state_dict': weights, 'meta': {}}, checkpoint)
    return checkpoint


FIVE_CLASSES = {'head.fc.weight': torch.zeros(5, TINY_SVT['embed_dims'][-1]),
                'head.fc.bias': torch.zeros(5)}


@pytest.mark.parametrize('change_head, listed', [
    (lambda weights: weights.pop('head.fc.bias'), 'head.fc.bias: not in the checkpoint'),
    (lambda weights: weights.update(FIVE_CLASSES),
     f'head.fc.weight: checkpoint (5, {TINY_SVT["embed_dims"][-1]}), model (2, '),
], ids=['no-head-bias', 'five-classes'])
def test_test_tool_refuses_a_checkpoint_that_leaves_weights_random(colour_dataset, tmp_path,
                                                                  change_head, listed):
    config = write_tiny_config(tmp_path, colour_dataset)
    checkpoint = checkpoint_with_another_head(config, tmp_path, change_head)
    message = exit_message('test', str(config), str(checkpoint),
                           '--work-dir', str(tmp_path / 'test'))
    assert message.startswith(f'error: {checkpoint} cannot be tested with the config')
    assert 'would keep their random initialisation' in message and listed in message


def test_fine_tuning_may_start_from_another_head(colour_dataset, tmp_path):
    config = write_tiny_config(tmp_path, colour_dataset)
    checkpoint = checkpoint_with_another_head(config, tmp_path,
                                              lambda weights: weights.update(FIVE_CLASSES))
    result = python_tool('train.py', str(config), '--work-dir', str(tmp_path / 'fine_tune'),
                         '--cfg-options', f'load_from={checkpoint}', 'train_cfg.max_epochs=1')
    assert result.returncode == 0, failure_report(result)
    assert (tmp_path / 'fine_tune' / 'epoch_1.pth').is_file()


def test_tools_name_an_unreadable_checkpoint(colour_dataset, tmp_path):
    config = write_tiny_config(tmp_path, colour_dataset)
    truncated = tmp_path / 'truncated.pth'
    torch.save({'state_dict': get_model(str(config)).state_dict()}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:5000])
    expected = f'error: {truncated}: not a readable PyTorch checkpoint'
    assert exit_message('test', str(config), str(truncated),
                        '--work-dir', str(tmp_path / 'test')).startswith(expected)
    assert exit_message('train', str(config), '--resume', str(truncated),
                        '--work-dir', str(tmp_path / 'train')).startswith(expected)


@pytest.mark.parametrize('out, message', [
    ('results.json', "'{tmp}/results.json' is no pickle file name; use a .pkl extension"),
    ('notes/results.pkl', "cannot write '{tmp}/notes/results.pkl': '{tmp}/notes' is a file"),
])
def test_test_tool_checks_out_before_testing(tmp_path, capsys, out, message):
    # MMEngine's DumpResults refused the name, or failed to write, after the whole test.
    (tmp_path / 'notes').write_text('')
    with pytest.raises(SystemExit) as exit_info:
        load_tool('test').main(['config.py', 'weights.pth', '--out', str(tmp_path / out)])
    assert exit_info.value.code == 2  # argparse's, before the config is read
    assert f'argument --out: {message.format(tmp=tmp_path)}' in capsys.readouterr().err


def test_amp_without_a_gpu_is_refused_before_training(colour_dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    config = write_tiny_config(tmp_path, colour_dataset)
    message = exit_message('train', str(config), '--amp', '--work-dir', str(tmp_path / 'work'))
    assert message.startswith('error: --amp needs a GPU')
    assert not (tmp_path / 'work').exists()


def test_get_model_refuses_another_architecture_listing_the_shapes(colour_dataset, tmp_path,
                                                                   davit_checkpoint):
    config = write_tiny_config(tmp_path, colour_dataset)
    with pytest.raises(ValueError, match=r'backbone.stages.0.patch_embed.proj.weight: '
                                         r'checkpoint \(16, 3, 7, 7\), model \(16, 3, 4, 4\)'):
        get_model(str(config), pretrained=str(davit_checkpoint))


class _ShellCommand:
    """Unpickling it would run ``touch marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def test_weights_carrying_a_pickled_payload_are_refused_not_run(colour_dataset, tmp_path):
    config = write_tiny_config(tmp_path, colour_dataset)
    weights = get_model(str(config)).state_dict()
    marker = tmp_path / 'payload_ran'
    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': weights, 'meta': {'note': _ShellCommand(marker)}}, evil)
    assert exit_message('test', str(config), str(evil), '--work-dir', str(tmp_path / 'work')
                        ).startswith(f'error: {evil}: refused to load')
    with pytest.raises(ValueError, match='refused to load'):
        get_model(str(config), pretrained=str(evil))
    assert not marker.exists()


# Unreadable images.


@pytest.mark.parametrize('content', [
    'half of a PNG', 'half of a JPEG', 'not an image', 'empty', 'missing'])
def test_unreadable_image_at_test_time_names_the_file(tmp_path, content):
    image = np.full((40, 40, 3), 128, np.uint8)
    png, jpeg = tmp_path / 'whole.png', tmp_path / 'whole.jpg'
    cv2.imwrite(str(png), image)
    cv2.imwrite(str(jpeg), image)
    payload = {'half of a PNG': png.read_bytes()[:png.stat().st_size // 2],
               'half of a JPEG': jpeg.read_bytes()[:jpeg.stat().st_size // 2],
               'not an image': b'GIF89a? no', 'empty': b''}
    path = tmp_path / 'bad.jpg'
    if content != 'missing':
        path.write_bytes(payload[content])
    with pytest.raises(ImageLoadError, match=f"cannot load image '{path}'"):
        load_image(path, on_error='raise')


def test_test_pipeline_of_the_configs_names_an_unreadable_image(image_folder, tmp_path):
    config = write_tiny_config(tmp_path, image_folder)
    # Evaluates on the folder holding the truncated image.
    config.write_text(config.read_text().replace(str(image_folder / 'val'),
                                                 str(image_folder / 'train')))
    dataset = build_dataset(config, 'val')
    bad = next(i for i in range(len(dataset)) if dataset.get_data_info(i)['img_path'].endswith(
        'red/0.png'))
    with pytest.raises(ImageLoadError, match=r"cannot load image '.*red/0\.png'"):
        dataset[bad]


@pytest.mark.parametrize('split', ['val', 'train'])
def test_ade20k_pipelines_name_or_skip_an_unreadable_image(tmp_path, split):
    from mmseg.registry import DATASETS as SEG_DATASETS
    data_root = write_ade20k(tmp_path / 'ade', train_images=2, val_images=2)
    folder = 'training' if split == 'train' else 'validation'
    bad = sorted((data_root / 'images' / folder).glob('*.jpg'))[0]
    bad.write_bytes(bad.read_bytes()[:100])
    real_config = 'configs/twins/upernet_svt-s_8xb2-160k_ade20k-512x512.py'
    config = tmp_path / 'tiny.py'
    config.write_text(tiny_segmentation_config(real_config, TINY_SVT, data_root, 1))
    cfg = Config.fromfile(str(config))
    # The tiny config's smaller crops load images as the real config does.
    real = Config.fromfile(str(REPO_ROOT / real_config))
    pipeline = f'{split}_pipeline' if split == 'train' else 'test_pipeline'
    assert cfg[pipeline][0] == real[pipeline][0]
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        dataset = SEG_DATASETS.build(cfg[f'{split}_dataloader'].dataset)
    index = next(i for i in range(len(dataset))
                 if dataset.get_data_info(i)['img_path'] == str(bad))
    if split == 'val':
        with pytest.raises(ImageLoadError, match=f"cannot load image '{re.escape(str(bad))}'"):
            dataset[index]
    else:  # another sample is drawn
        assert dataset[index]['data_samples'].img_path != str(bad)


def test_training_skips_an_unreadable_image_with_a_warning(image_folder, tmp_path):
    dataset = build_dataset(write_tiny_config(tmp_path, image_folder), 'train')
    bad = next(i for i in range(len(dataset)) if dataset.get_data_info(i)['img_path'].endswith(
        'red/0.png'))
    warnings = logging.Handler(logging.WARNING)
    warnings.emit = lambda record: messages.append(record.getMessage())
    messages = []
    logger = MMLogger.get_current_instance()
    logger.addHandler(warnings)
    try:
        sample = dataset[bad]  # the dataset draws another sample instead
    finally:
        logger.removeHandler(warnings)
    assert not sample['data_samples'].img_path.endswith('red/0.png')
    assert sample['inputs'].shape == (3, 224, 224)
    # Each attempt counts: the random redraw may land on the bad file again.
    assert dataset.pipeline.transforms[0].skipped_count.value == len(messages)
    assert all("red/0.png' (" in message for message in messages)
    assert '(1 skipped of at most 100)' in messages[0]


def test_skipping_stops_past_the_bound(image_folder):
    bad = image_folder / 'train' / 'red' / '0.png'
    loader = SafeLoadImageFromFile(on_error='skip', max_skipped=2)
    assert loader(dict(img_path=str(bad))) is None
    assert loader(dict(img_path=str(bad))) is None
    with pytest.raises(ImageLoadError, match='3 unreadable images so far, more than '
                                             'max_skipped=2'):
        loader(dict(img_path=str(bad)))


def test_the_skip_bound_holds_across_workers_and_epochs(image_folder, tmp_path):
    """Two data loader workers, started again each epoch as the configs' are: the count of
    one training process goes on over both and over the epochs, until past the bound."""
    config = write_tiny_config(tmp_path, image_folder)
    work_dir = tmp_path / 'work'
    with pytest.raises(ImageLoadError, match=r"cannot load image '.*red/0\.png'.*; 3 "
                                             'unreadable images so far, more than '
                                             'max_skipped=2') as error:
        load_tool('train').main([
            str(config), '--work-dir', str(work_dir), '--no-validate', '--cfg-options',
            'train_cfg.max_epochs=4', 'train_dataloader.num_workers=2',
            'train_dataloader.dataset.pipeline.0.max_skipped=2'])
    # The traceback holds the data loader iterator in a reference cycle; freed later by the
    # garbage collector, it stops its workers only after a 5 s timeout each (PyTorch 2.15).
    traceback.clear_frames(error.tb)
    log = next(work_dir.glob('*/*.log')).read_text()
    # The one unreadable file (and a redraw landing on it again) in epoch 1, from the
    # workers, then the third skip in a later epoch: the workers started again went on
    # counting instead of starting at 1.
    assert sorted(re.findall(r'\((\d+) skipped of at most 2\)', log)) == ['1', '2']
    assert (work_dir / 'epoch_1.pth').is_file() and not (work_dir / 'epoch_4.pth').exists()


def test_a_real_training_run_skips_and_finishes(image_folder, tmp_path):
    config = write_tiny_config(tmp_path, image_folder)
    load_tool('train').main([str(config), '--work-dir', str(tmp_path / 'work')])
    assert (tmp_path / 'work' / 'epoch_1.pth').is_file()
    log = next((tmp_path / 'work').glob('*/*.log')).read_text()
    assert 'red/0.png' in log and 'skipped, another sample is drawn' in log


def test_an_already_loaded_image_passes_through():
    """As mmpretrain's inferencers give it, having decoded the image themselves."""
    image = np.zeros((4, 4, 3), np.uint8)
    assert SafeLoadImageFromFile()(dict(img=image))['img'] is image


# Unusual image formats and sizes.


def test_grayscale_16_bit_and_rgba_become_8_bit_bgr(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb[..., 0]).save(tmp_path / 'gray.png')
    Image.fromarray(np.dstack([rgb, np.full((20, 30), 7, np.uint8)]), 'RGBA').save(
        tmp_path / 'rgba.png')
    cv2.imwrite(str(tmp_path / 'deep.png'), rgb[..., ::-1].astype(np.uint16) * 257)
    expected = {'gray': np.repeat(rgb[..., :1], 3, axis=2), 'rgba': rgb[..., ::-1],
                'deep': rgb[..., ::-1]}
    for name, bgr in expected.items():
        image = load_image(tmp_path / f'{name}.png')['img']
        assert image.dtype == np.uint8 and image.shape == (20, 30, 3), name
        assert np.array_equal(image, bgr), name


@pytest.mark.parametrize('size', [(8, 8), (3, 40)])
def test_an_image_below_the_backbone_minimum_is_resized_by_the_pipelines(tmp_path, size):
    """Twins needs 29 x 29; the config pipelines resize any image to 224 first."""
    for label in ('blue', 'red'):
        (tmp_path / 'data' / label).mkdir(parents=True)
        Image.new('RGB', size[::-1], 'red').save(tmp_path / 'data' / label / 'tiny.png')
    config = tmp_path / 'tiny.py'
    config.write_text(tiny_classification_config(TWINS_CONFIG, TINY_SVT, tmp_path)
                      .replace(str(tmp_path / 'train'), str(tmp_path / 'data'))
                      .replace(str(tmp_path / 'val'), str(tmp_path / 'data')))
    model = get_model(str(config))
    for split in ('train', 'val'):
        sample = build_dataset(config, split)[0]
        assert sample['inputs'].shape == (3, 224, 224)
        batch = model.data_preprocessor(dict(inputs=[sample['inputs']],
                                             data_samples=[sample['data_samples']]))
        assert model(batch['inputs'], mode='tensor').shape == (1, 2)
