"""demo/quickstart.py end to end for one epoch: data, training, testing, prediction, plot.

The 95% accuracy of the full run is not checked here (it takes minutes); one epoch must
still learn far more than chance. The run asks for an accuracy above 100%, so that it also
shows the accuracy gate failing the run, after every step has finished.
"""
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = REPO_ROOT / 'demo' / 'quickstart.py'
SPLIT_SIZES = {'train': 1257, 'val': 270, 'test': 270}
CHANCE_ACCURACY = 10.0
UNREACHABLE_ACCURACY = 100.5


def load_quickstart() -> ModuleType:
    spec = importlib.util.spec_from_file_location('quickstart', QUICKSTART)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def one_epoch_run(tmp_path_factory) -> dict:
    """Runs the quickstart for one epoch; returns its folders, exit status and output."""
    root = tmp_path_factory.mktemp('quickstart')
    work_dir, data_root = root / 'work', root / 'digits'
    process = subprocess.run(
        [sys.executable, str(QUICKSTART), '--work-dir', str(work_dir), '--data-root',
         str(data_root), '--epochs', '1', '--min-accuracy', str(UNREACHABLE_ACCURACY)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    return dict(work_dir=work_dir, data_root=data_root, returncode=process.returncode,
                output=process.stdout + process.stderr)


def test_run_completes_then_fails_the_accuracy_gate(one_epoch_run):
    output = one_epoch_run['output']
    assert one_epoch_run['returncode'] == 1, output[-5000:]
    assert re.search(rf'error: the test accuracy [\d.]+% is below {UNREACHABLE_ACCURACY:.2f}%',
                     output), output[-5000:]
    assert '=== Quickstart summary ===' in output


def test_training_progress_is_shown(one_epoch_run):
    output = one_epoch_run['output']
    # The logger's interval lines (mmengine pads the epoch to the width of the last one):
    # 1,257 images in batches of 64 give 20 iterations, 270 in batches of 256 give 2.
    for progress in (r'Epoch\(train\) +\[1\]\[10/20\]', r'Epoch\(train\) +\[1\]\[20/20\]',
                     r'Epoch\(val\) +\[1\]\[2/2\]', r'Epoch\(test\) +\[2/2\]'):
        assert re.search(progress, output), progress


def test_digits_written_in_folder_layout(one_epoch_run):
    data_root = one_epoch_run['data_root']
    for split, size in SPLIT_SIZES.items():
        images = sorted((data_root / split).glob('*/*.png'))
        assert len(images) == size
        assert sorted(path.name for path in (data_root / split).iterdir()) == \
            [str(label) for label in range(10)]
        with Image.open(images[0]) as image:
            assert image.size == (32, 32)


def test_checkpoint_and_test_metrics(one_epoch_run):
    work_dir = one_epoch_run['work_dir']
    checkpoint = Path((work_dir / 'last_checkpoint').read_text().strip())
    assert checkpoint == work_dir / 'epoch_1.pth' and checkpoint.is_file()

    metric_files = [path for path in work_dir.glob('*/*.json')
                    if path.stem == path.parent.name]
    assert len(metric_files) == 1, metric_files  # only tools/test.py writes <run>/<run>.json
    top1 = json.loads(metric_files[0].read_text().splitlines()[-1])['accuracy/top1']
    assert top1 > 2 * CHANCE_ACCURACY
    reported = re.search(r'test top-1 accuracy : ([\d.]+)%', one_epoch_run['output'])
    assert reported and float(reported.group(1)) == pytest.approx(top1, abs=0.005)


def test_prediction_of_held_out_image(one_epoch_run):
    match = re.search(r'held-out image +: (\S+)\n +predicted class (\d) \(score ([\d.]+)\), '
                      r'true class (\d)', one_epoch_run['output'])
    assert match, one_epoch_run['output'][-3000:]
    image_path, _, score, true_class = match.groups()
    assert Path(image_path).parent.parent == one_epoch_run['data_root'] / 'test'
    assert Path(image_path).parent.name == true_class
    assert 0.0 < float(score) <= 1.0


def test_learning_curve_plot(one_epoch_run):
    plot = one_epoch_run['work_dir'] / 'learning_curve.png'
    with Image.open(plot) as image:
        assert image.format == 'PNG'
        assert image.width > 500 and image.height > 200
        pixels = np.asarray(image.convert('L'))
    assert pixels.std() > 10  # something is drawn, not a blank canvas


def test_second_run_reuses_written_digits(one_epoch_run):
    data_root = one_epoch_run['data_root']
    image = next((data_root / 'test').glob('*/*.png'))
    before = image.stat().st_mtime_ns
    assert load_quickstart().write_digits(data_root) == SPLIT_SIZES
    assert image.stat().st_mtime_ns == before


def test_split_is_fixed_disjoint_and_stratified():
    quickstart = load_quickstart()
    labels = np.repeat(np.arange(10), 180)
    splits = quickstart.split_indices(labels)
    again = quickstart.split_indices(labels)
    assert all(np.array_equal(splits[name], again[name]) for name in splits)
    combined = np.concatenate(list(splits.values()))
    assert np.array_equal(np.sort(combined), np.arange(len(labels)))
    for name, fraction in (('train', 0.7), ('val', 0.15), ('test', 0.15)):
        per_class = np.bincount(labels[splits[name]], minlength=10)
        assert np.all(np.abs(per_class - fraction * 180) <= 1), (name, per_class)
