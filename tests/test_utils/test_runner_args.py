"""The tools' shared options, their launch scripts' usage, and the exit after a distributed
run (release_process_group)."""
import argparse
import gc
import subprocess
import weakref

import pytest
import torch.distributed as dist

from mmtwins.utils import add_runner_arguments, release_process_group
from tests.helpers import REPO_ROOT


def test_cfg_options_are_parsed_and_a_malformed_one_is_named(capsys):
    parser = argparse.ArgumentParser()
    add_runner_arguments(parser)
    options = parser.parse_args(['--cfg-options', 'train_cfg.max_epochs=3', 'a=[1,2]'])
    assert options.cfg_options == {'train_cfg.max_epochs': 3, 'a': [1, 2]}
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(['--cfg-options', 'train_cfg.max_epochs'])
    assert exit_info.value.code == 2
    assert "--cfg-options: 'train_cfg.max_epochs' is not KEY=VALUE" in capsys.readouterr().err


@pytest.mark.parametrize('script, usage', [
    ('dist_train.sh', 'CONFIG GPUS'),
    ('dist_test.sh', 'CONFIG CHECKPOINT GPUS'),
    ('slurm_train.sh', 'PARTITION JOB_NAME CONFIG WORK_DIR'),
    ('slurm_test.sh', 'PARTITION JOB_NAME CONFIG CHECKPOINT'),
])
def test_launch_scripts_without_their_arguments_print_their_usage(script, usage):
    result = subprocess.run(['bash', str(REPO_ROOT / 'tools' / script), 'configs/x.py'],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith('usage: bash ') and usage in result.stderr


def test_destroys_the_process_group_and_is_a_no_op_without_one(tmp_path):
    release_process_group()  # none yet: nothing to do
    dist.init_process_group('gloo', init_method=f'file://{tmp_path / "store"}', rank=0,
                            world_size=1)
    assert dist.is_initialized()
    release_process_group()
    assert not dist.is_initialized()


class _Cycle:
    """Holds itself, as a finished runner does through its hooks."""

    def __init__(self):
        self.itself = self


def test_frees_objects_in_reference_cycles_before_destroying(tmp_path):
    dist.init_process_group('gloo', init_method=f'file://{tmp_path / "store"}', rank=0,
                            world_size=1)
    gc.disable()  # no automatic collection: only release_process_group's
    try:
        left_over = weakref.ref(_Cycle())
        assert left_over() is not None
        release_process_group()
        assert left_over() is None
    finally:
        gc.enable()
    assert not dist.is_initialized()
