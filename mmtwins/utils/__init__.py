from .collect_env import check_mmcv_ops, collect_env
from .compile import INDUCTOR_OPTIONS, compile_model
from .config import ConfigError, load_config
from .data_check import DatasetNotFoundError, check_data_paths
from .runner_args import (add_runner_arguments, apply_runner_arguments,
                          release_process_group)

__all__ = [
    'collect_env', 'check_mmcv_ops', 'compile_model', 'INDUCTOR_OPTIONS', 'ConfigError',
    'load_config', 'DatasetNotFoundError', 'check_data_paths', 'add_runner_arguments',
    'apply_runner_arguments', 'release_process_group'
]
