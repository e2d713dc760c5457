"""Helpers shared by the tests: tiny architectures, a tiny real image dataset, configs,
and running the tools as a user does."""
import os
import os.path as osp
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]

# Small enough for fast tests, big enough to exercise every code path: GSA with and
# without sub-sampling, LSA, several blocks per stage, several heads.
TINY_PCPVT = dict(
    embed_dims=(16, 32, 48, 64),
    depths=(2, 1, 2, 1),
    num_heads=(1, 2, 3, 4),
    mlp_ratios=(2, 2, 2, 2),
    sr_ratios=(8, 4, 2, 1))
TINY_SVT = dict(TINY_PCPVT, depths=(2, 2, 2, 2))
TINY_DAVIT = dict(
    embed_dims=(16, 32, 48, 64), depths=(1, 1, 2, 1), num_heads=(1, 2, 3, 4))


def write_colour_classes(root: Path, images_per_class: int, size: int = 48, seed: int = 0):
    """Writes an ImageNet-style folder of two classes that a model can tell apart.

    ``red/`` holds reddish noise images and ``blue/`` bluish ones, as PNG files in
    ``root/<class>/<n>.png``.
    """
    rng = np.random.default_rng(seed)
    for label, channel in (('blue', 2), ('red', 0)):
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(images_per_class):
            image = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
            image[..., channel] += 150
            Image.fromarray(image).save(folder / f'{index}.png')


def tiny_classification_config(base_config: str, arch: dict, data_root: Path,
                               max_epochs: int = 1) -> str:
    """Text of a config that inherits a real one, shrunk to a tiny model and dataset."""
    loader = 'batch_size=4, num_workers=0, persistent_workers=False, pin_memory=False'
    return f"""
_base_ = [{osp.join(str(REPO_ROOT), base_config)!r}]
model = dict(
    backbone=dict(arch=dict(_delete_=True, **{arch!r})),
    neck=dict(in_channels={arch['embed_dims'][-1]}),
    head=dict(num_classes=2, in_channels={arch['embed_dims'][-1]}))
data_preprocessor = dict(num_classes=2)
train_dataloader = dict(
    {loader},
    dataset=dict(_delete_=True, type='CustomDataset', data_root={str(data_root / 'train')!r},
                 pipeline={{{{_base_.train_pipeline}}}}))
val_dataloader = dict(
    {loader},
    dataset=dict(_delete_=True, type='CustomDataset', data_root={str(data_root / 'val')!r},
                 pipeline={{{{_base_.test_pipeline}}}}))
test_dataloader = val_dataloader
val_evaluator = dict(topk=(1, ))
test_evaluator = val_evaluator
train_cfg = dict(max_epochs={max_epochs})
default_hooks = dict(logger=dict(interval=1))
randomness = dict(seed=0)
"""


def run_tool(*args: str, cwd: Path = REPO_ROOT,
             timeout: int = 600) -> subprocess.CompletedProcess:
    """Runs a command as a user of the repository would, capturing its output."""
    # As in an activated environment: the dist_*.sh scripts call `python`.
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ['PATH']])
    # PYTHONFAULTHANDLER: a tool that dies of a signal (the rare abort of a gloo rank seen
    # in CI, see release_process_group) prints the Python stack of each thread to stderr.
    env = dict(os.environ, PATH=path, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS='1',
               PYTHONFAULTHANDLER='1')
    return subprocess.run([*args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def failure_report(result: subprocess.CompletedProcess, tail: int = 4000) -> str:
    """An assertion message for a failed tool: the end of its stderr, preceded by the
    Python stacks faulthandler printed for a process killed by a signal, which other
    processes' output (torchrun's report of the failed rank) can push out of that end."""
    stderr = result.stderr
    crash = stderr.find('Fatal Python error')
    if 0 <= crash < len(stderr) - tail:
        return stderr[crash:crash + 8000] + '\n[...]\n' + stderr[-tail:]
    return stderr[-tail:]


def python_tool(script: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """Runs ``tools/<script>`` with this interpreter."""
    return run_tool(sys.executable, str(REPO_ROOT / 'tools' / script), *args, **kwargs)
