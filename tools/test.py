"""Tests a checkpoint of any task with the evaluator of its config.

Example:
    python tools/test.py configs/twins/svt-s_8xb128_in1k.py work_dirs/svt-s/epoch_300.pth
    python tools/test.py CONFIG CHECKPOINT --out results.pkl
    python tools/test.py CONFIG CHECKPOINT --tta         # multi-scale + flip (segmentation)
    bash tools/dist_test.sh CONFIG CHECKPOINT 8
"""
import argparse
import sys
from typing import Optional, Sequence

from mmengine.config import Config

from mmtwins.converters import CheckpointError
from mmtwins.datasets import ImageLoadError
from mmtwins.engine import Runner
from mmtwins.utils import (ConfigError, DatasetNotFoundError, add_runner_arguments,
                           apply_runner_arguments, check_data_paths, load_config,
                           release_process_group)
from mmtwins.utils.atomic_files import check_can_create


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parses the config, the checkpoint, ``--out``, ``--tta`` and the runner's arguments.

    Args:
        argv: The arguments without the program name; ``sys.argv[1:]`` when None.

    Returns:
        The parsed arguments.

    Example:
        >>> parse_args(['configs/twins/svt-s_8xb128_in1k.py', 'epoch_300.pth']).checkpoint
        'epoch_300.pth'
    """
    parser = argparse.ArgumentParser(description='Test a checkpoint')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', type=pickle_file,
                        help='also dump the predictions to this pickle file (.pkl)')
    parser.add_argument(
        '--tta', action='store_true',
        help='test-time augmentation: the config\'s tta_pipeline (segmentation: several '
        'scales, each also flipped) with its tta_model merging the predictions')
    add_runner_arguments(parser)
    return parser.parse_args(argv)


def pickle_file(path: str) -> str:
    """``path`` for ``--out``, checked before the test runs: MMEngine's ``DumpResults``
    writes only ``.pkl`` or ``.pickle`` files, and only once every batch has run.

    Example:
        >>> pickle_file('work_dirs/results.pkl')
        'work_dirs/results.pkl'
    """
    if not path.endswith(('.pkl', '.pickle')):
        raise argparse.ArgumentTypeError(f'{path!r} is no pickle file name; use a .pkl '
                                         f'extension')
    try:
        return check_can_create(path)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def use_test_time_augmentation(cfg: Config) -> Config:
    """Tests on ``cfg.tta_pipeline`` with ``cfg.tta_model`` wrapping the model, as mmseg does.

    Args:
        cfg: a runner config; changed in place and returned.

    Raises:
        ConfigError: the config has no ``tta_pipeline`` or ``tta_model``.

    Example:
        >>> cfg = load_config('configs/twins/upernet_svt-s_8xb2-160k_ade20k-512x512.py')
        >>> use_test_time_augmentation(cfg).model.type
        'SegTTAModel'
    """
    missing = [key for key in ('tta_pipeline', 'tta_model') if key not in cfg]
    if missing:
        raise ConfigError(f'--tta needs {" and ".join(missing)} in the config '
                          f'{cfg.filename}; the segmentation configs have them')
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model
    return cfg


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Applies the checkpoint, ``--tta`` and the runner's arguments to the config.

    Args:
        cfg: The config of the checkpoint to test; changed in place and returned.
        args: The parsed command line.

    Returns:
        ``cfg``.

    Raises:
        ConfigError: ``--tta`` with a config that has no test-time augmentation.

    Example:
        >>> args = parse_args(['configs/twins/svt-s_8xb128_in1k.py', 'epoch_300.pth'])
        >>> merge_args(load_config(args.config), args).load_from
        'epoch_300.pth'
    """
    apply_runner_arguments(cfg, args, args.config)
    cfg.load_from = args.checkpoint
    if args.tta:
        use_test_time_augmentation(cfg)
    return cfg


def dump_predictions(cfg: Config, out_file: str) -> Config:
    """Adds MMEngine's ``DumpResults`` to the test evaluators, writing ``out_file``."""
    evaluators = cfg.test_evaluator
    evaluators = list(evaluators) if isinstance(evaluators, (list, tuple)) else [evaluators]
    evaluators.append(dict(type='DumpResults', out_file_path=out_file))
    cfg.test_evaluator = evaluators
    return cfg


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Tests the checkpoint; exits with a one-line error when it cannot.

    Args:
        argv: As for :func:`parse_args`.

    Example:
        >>> main(['configs/twins/svt-s_8xb128_in1k.py', 'work_dirs/svt-s/epoch_300.pth'])
    """
    args = parse_args(argv)
    try:
        cfg = merge_args(load_config(args.config, args.cfg_options), args)
        # Before --out makes test_evaluator a list: errors name the keys as configured.
        check_data_paths(cfg, keys=('test_dataloader', ))
        if args.out is not None:
            dump_predictions(cfg, args.out)
    except (ConfigError, DatasetNotFoundError) as error:
        sys.exit(f'error: {error}')
    try:
        Runner.from_cfg(cfg).test()
    except (FileNotFoundError, ConnectionError, CheckpointError, ImageLoadError) as error:
        # A missing, unreachable or unusable checkpoint, an image that does not decode.
        sys.exit(f'error: {error}')
    release_process_group()


if __name__ == '__main__':
    main()
