"""Training killed with SIGKILL at random moments and resumed ends with the weights of an
uninterrupted run, bit for bit, with the same logged losses."""
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest
import torch

from mmtwins.converters import read_checkpoint
from tests.helpers import REPO_ROOT, TINY_SVT, tiny_classification_config

MAX_EPOCHS = 3
TRAIN = [sys.executable, str(REPO_ROOT / 'tools' / 'train.py')]
ENV = dict(os.environ, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')

# Moments to kill at, in this order, each the first such log line of a run followed by a
# random delay: a training step, validation, the write of a checkpoint, a training step.
# Every run that resumes before the end reaches each of them, however far the previous run
# got (an epoch of the tiny model takes about 0.5 s on an idle machine).
KILL_AFTER = (
    r'Epoch\(train\) +\[\d+\]\[2/4\]',
    r'Epoch\(val\) +\[\d+\]\[1/3\]',
    r'Saving checkpoint at \d+ epochs',
    r'Epoch\(train\) +\[\d+\]\[2/4\]',
)
MAX_DELAY_S = 0.1

# Run as `python -c` to kill a run in the middle of writing its epoch-2 checkpoint: the
# file backend writes half the bytes, then the process kills itself.
KILL_MID_WRITE = """
import os, signal, sys
from mmengine.fileio.backends import LocalBackend
put = LocalBackend.put
def half_then_die(self, obj, filepath):
    if 'epoch_2' in str(filepath):
        with open(filepath, 'wb') as file:
            file.write(obj[:len(obj) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    put(self, obj, filepath)
LocalBackend.put = half_then_die
sys.argv = sys.argv[1:]
exec(open(sys.argv[0]).read())
"""


def write_config(folder: Path, colour_dataset: Path, max_keep_ckpts: int) -> Path:
    config = folder / 'tiny.py'
    config.write_text(
        tiny_classification_config('configs/twins/svt-s_8xb128_in1k.py', TINY_SVT,
                                   colour_dataset, MAX_EPOCHS)
        + f'default_hooks.update(checkpoint=dict(max_keep_ckpts={max_keep_ckpts}))\n')
    return config


# The segmentation runtime's kind of run: iterations, not epochs, and an infinite sampler.
ITERATION_BASED = """
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=12, val_interval=4)
train_dataloader.update(sampler=dict(type='InfiniteSampler', shuffle=True))
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=6)]
default_hooks['checkpoint'].update(by_epoch=False, interval=4)
log_processor = dict(by_epoch=False)
"""


def train(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([*TRAIN, *args], env=ENV, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def train_killed_after(pattern: str, delay_s: float, *args: str) -> bool:
    """Runs training and kills it ``delay_s`` after a log line; False if it ended first."""
    process = subprocess.Popen([*TRAIN, *args], env=ENV, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    output = []
    for line in process.stdout:
        output.append(line)
        if re.search(pattern, line):
            time.sleep(delay_s)
            process.send_signal(signal.SIGKILL)
            break
    output += process.stdout.readlines()
    process.stdout.close()
    returncode = process.wait(timeout=300)
    assert returncode in (0, -signal.SIGKILL), ''.join(output)[-3000:]
    return returncode == -signal.SIGKILL


def last_checkpoint(work_dir: Path) -> Optional[str]:
    """What ``work_dir/last_checkpoint`` names, if it exists."""
    record = work_dir / 'last_checkpoint'
    return record.read_text().strip() if record.exists() else None


def final_weights(work_dir: Path) -> Dict[str, torch.Tensor]:
    return read_checkpoint(str(work_dir / f'epoch_{MAX_EPOCHS}.pth'))['state_dict']


def logged_losses(work_dir: Path, epoch: int) -> List[Tuple[int, float]]:
    """``(step, loss)`` of the training iterations of ``epoch`` in the latest log."""
    log = max(work_dir.glob('*/vis_data/scalars.json'), key=os.path.getmtime)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    return [(r['step'], r['loss']) for r in records if 'loss' in r and r['epoch'] == epoch]


def assert_same_weights(actual: Dict[str, torch.Tensor], expected: Dict[str, torch.Tensor]):
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        assert torch.equal(actual[name], value), name


@pytest.fixture(scope='module')
def reference(colour_dataset, tmp_path_factory) -> Tuple[Path, Path]:
    """An uninterrupted run: its config and work dir."""
    work_dir = tmp_path_factory.mktemp('uninterrupted')
    config = write_config(work_dir, colour_dataset, max_keep_ckpts=1)
    train(str(config), '--work-dir', str(work_dir))
    return config, work_dir


def test_killed_at_random_moments_resumes_exactly(reference, tmp_path):
    config, reference_dir = reference
    delays = random.Random(0)
    kills = 0
    for pattern in KILL_AFTER:
        kills += train_killed_after(pattern, delays.uniform(0, MAX_DELAY_S), str(config),
                                    '--work-dir', str(tmp_path), '--resume')
        checkpoint = last_checkpoint(tmp_path)
        if checkpoint is not None:  # what the record points at is complete
            read_checkpoint(checkpoint)
    assert kills >= 3, 'most runs must have been killed, or nothing was tested'
    train(str(config), '--work-dir', str(tmp_path), '--resume')

    assert_same_weights(final_weights(tmp_path), final_weights(reference_dir))
    assert logged_losses(tmp_path, MAX_EPOCHS) == logged_losses(reference_dir, MAX_EPOCHS)


def test_resume_with_data_loader_workers_is_exact(colour_dataset, tmp_path):
    """Workers that restart every epoch are seeded from torch's generator, which is restored."""
    config = write_config(tmp_path, colour_dataset, max_keep_ckpts=3)
    workers = ['--cfg-options', 'train_dataloader.num_workers=2',
               'train_dataloader.persistent_workers=False']
    train(str(config), '--work-dir', str(tmp_path / 'uninterrupted'), *workers)
    train(str(config), '--work-dir', str(tmp_path / 'resumed'), '--resume',
          str(tmp_path / 'uninterrupted' / 'epoch_1.pth'), *workers)
    assert_same_weights(final_weights(tmp_path / 'resumed'),
                        final_weights(tmp_path / 'uninterrupted'))


def test_iteration_based_run_killed_resumes_exactly(colour_dataset, tmp_path):
    """Resumed, MMEngine replays the trained batches; the states are restored after them."""
    config = write_config(tmp_path, colour_dataset, max_keep_ckpts=3)
    config.write_text(config.read_text() + ITERATION_BASED)
    train(str(config), '--work-dir', str(tmp_path / 'uninterrupted'))
    killed = tmp_path / 'killed'
    assert train_killed_after(r'Iter\(train\) +\[ ?6/12\]', random.Random(1).uniform(0, 0.1),
                              str(config), '--work-dir', str(killed))
    train(str(config), '--work-dir', str(killed), '--resume')
    final = {name: read_checkpoint(str(folder / 'iter_12.pth'))['state_dict']
             for name, folder in (('killed', killed), ('uninterrupted',
                                                       tmp_path / 'uninterrupted'))}
    assert_same_weights(final['killed'], final['uninterrupted'])



def test_checkpoint_within_an_epoch_resumes_exactly(colour_dataset, tmp_path):
    """Epochs of 4 iterations, a checkpoint every 3: iter_6.pth is saved within epoch 2, and
    the resumed run draws that epoch's first 2 batches again with its workers seeded as then."""
    config = write_config(tmp_path, colour_dataset, max_keep_ckpts=4)
    config.write_text(config.read_text()
                      + "default_hooks['checkpoint'].update(by_epoch=False, interval=3)\n")
    workers = ['--cfg-options', 'train_dataloader.num_workers=2',
               'train_dataloader.persistent_workers=False']
    uninterrupted, resumed = tmp_path / 'uninterrupted', tmp_path / 'resumed'
    train(str(config), '--work-dir', str(uninterrupted), *workers)
    train(str(config), '--work-dir', str(resumed), '--resume', str(uninterrupted / 'iter_6.pth'),
          *workers)
    assert sorted(path.name for path in resumed.glob('*.pth')) == ['iter_12.pth', 'iter_9.pth']
    assert_same_weights(read_checkpoint(str(resumed / 'iter_12.pth'))['state_dict'],
                        read_checkpoint(str(uninterrupted / 'iter_12.pth'))['state_dict'])


def test_killed_mid_checkpoint_write_keeps_the_previous_one(reference, tmp_path):
    config, reference_dir = reference
    result = subprocess.run(
        [sys.executable, '-c', KILL_MID_WRITE, *TRAIN[1:], str(config), '--work-dir',
         str(tmp_path)], env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    # max_keep_ckpts=1: epoch 1 is removed only once epoch 2 is complete.
    assert last_checkpoint(tmp_path) == str(tmp_path / 'epoch_1.pth')
    assert read_checkpoint(str(tmp_path / 'epoch_1.pth'))['meta']['epoch'] == 1
    assert not (tmp_path / 'epoch_2.pth').exists()

    resumed = train(str(config), '--work-dir', str(tmp_path), '--resume')
    assert 'resumed epoch: 1' in resumed.stdout + resumed.stderr
    assert_same_weights(final_weights(tmp_path), final_weights(reference_dir))
    assert sorted(path.name for path in tmp_path.glob('epoch_*.pth')) == ['epoch_3.pth']
