"""Trains a model of any task (classification, segmentation, detection) from a config.

Example:
    python tools/train.py configs/twins/svt-s_8xb128_in1k.py --work-dir work_dirs/svt-s
    python tools/train.py CONFIG --resume              # from the latest checkpoint of the work dir
    bash tools/dist_train.sh CONFIG 8                  # distributed (torchrun)
"""
import argparse
import sys
from typing import Optional, Sequence

import torch
from mmengine.config import Config

from mmtwins.converters import CheckpointError
from mmtwins.engine import Runner
from mmtwins.utils import (ConfigError, DatasetNotFoundError, add_runner_arguments,
                           apply_runner_arguments, check_data_paths, load_config,
                           release_process_group)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parses the config, the training options and the runner's arguments.

    Args:
        argv: The arguments without the program name; ``sys.argv[1:]`` when None.

    Returns:
        The parsed arguments; ``resume`` is ``'auto'`` for ``--resume`` without a
        checkpoint.

    Example:
        >>> parse_args(['configs/twins/svt-s_8xb128_in1k.py', '--resume']).resume
        'auto'
    """
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--resume', nargs='?', const='auto', metavar='CHECKPOINT',
        help='resume from CHECKPOINT, or without a value from the latest checkpoint of the '
        'work dir')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument('--no-validate', action='store_true', help='skip validation')
    parser.add_argument(
        '--auto-scale-lr', action='store_true',
        help='scale the learning rate by the actual total batch size (linear scaling rule)')
    add_runner_arguments(parser)
    return parser.parse_args(argv)


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Applies the training options and the runner's arguments to the config.

    Args:
        cfg: The config to train with; changed in place and returned.
        args: The parsed command line.

    Returns:
        ``cfg``.

    Raises:
        ConfigError: ``--amp`` without a GPU.

    Example:
        >>> args = parse_args(['configs/twins/svt-s_8xb128_in1k.py', '--no-validate'])
        >>> merge_args(load_config(args.config), args).val_cfg is None
        True
    """
    apply_runner_arguments(cfg, args, args.config)
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.amp:
        if not torch.cuda.is_available():
            raise ConfigError('--amp needs a GPU: MMEngine\'s AmpOptimWrapper runs on CUDA '
                              '(or NPU, MLU, MUSA) devices only; on CPU train without it')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    return cfg


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Trains the model of the config; exits with a one-line error when it cannot.

    Args:
        argv: As for :func:`parse_args`.

    Example:
        >>> main(['configs/twins/svt-s_8xb128_in1k.py', '--work-dir', 'work_dirs/svt-s'])
    """
    args = parse_args(argv)
    try:
        cfg = merge_args(load_config(args.config, args.cfg_options), args)
        check_data_paths(cfg)
    except (ConfigError, DatasetNotFoundError) as error:
        sys.exit(f'error: {error}')
    try:
        Runner.from_cfg(cfg).train()
    except (CheckpointError, FloatingPointError) as error:
        # --resume or load_from names a file that cannot be used; the run diverged.
        sys.exit(f'error: {error}')
    release_process_group()


if __name__ == '__main__':
    main()
