"""Tests a checkpoint of any task with the evaluator of its config.

Example:
    python tools/test.py configs/twins/svt-s_8xb128_in1k.py work_dirs/svt-s/epoch_300.pth
    python tools/test.py CONFIG CHECKPOINT --out results.pkl
    bash tools/dist_test.sh CONFIG CHECKPOINT 8
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import DictAction

from mmtwins.engine import Runner
from mmtwins.utils import ConfigError, DatasetNotFoundError, check_data_paths, load_config


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a checkpoint')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='folder for the logs and metrics '
                        '(default: work_dirs/<config name>)')
    parser.add_argument('--out', help='also dump the predictions to this pickle file')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
        help='override config settings, e.g. test_dataloader.batch_size=32')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def merge_args(cfg, args):
    """Applies the command-line options to the config."""
    cfg.launcher = args.launcher
    cfg.load_from = args.checkpoint
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.out is not None:
        evaluators = cfg.test_evaluator
        evaluators = list(evaluators) if isinstance(evaluators, (list, tuple)) else [evaluators]
        evaluators.append(dict(type='DumpResults', out_file_path=args.out))
        cfg.test_evaluator = evaluators
    return cfg


def main(argv=None) -> None:
    args = parse_args(argv)
    try:
        cfg = merge_args(load_config(args.config, args.cfg_options), args)
        check_data_paths(cfg, keys=('test_dataloader', ))
    except (ConfigError, DatasetNotFoundError) as error:
        sys.exit(f'error: {error}')
    Runner.from_cfg(cfg).test()


if __name__ == '__main__':
    main()
