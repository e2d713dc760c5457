"""Checks, before a run starts, that the datasets a config names are on disk."""
import os.path as osp
from typing import Iterator, List, Tuple

from mmengine.config import Config

DATALOADER_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader')

# Where each kind of dataset's expected layout is documented.
_LAYOUT_DOCS = (
    ('ImageNet', 'docs/classification.md#prepare-imagenet'),
    ('CustomDataset', 'docs/classification.md#prepare-imagenet'),
    ('ADE20K', 'docs/segmentation.md#prepare-ade20k'),
    ('Coco', 'docs/detection.md#prepare-coco'),
)


class DatasetNotFoundError(FileNotFoundError):
    """A dataset folder or annotation file that a config names does not exist."""


def _leaf_datasets(dataset_cfg: dict) -> Iterator[dict]:
    """Yields the datasets inside wrappers such as ``RepeatDataset`` and ``ConcatDataset``."""
    if 'datasets' in dataset_cfg:
        for child in dataset_cfg['datasets']:
            yield from _leaf_datasets(child)
    elif 'dataset' in dataset_cfg:
        yield from _leaf_datasets(dataset_cfg['dataset'])
    else:
        yield dataset_cfg


def _named_paths(dataset_cfg: dict) -> List[Tuple[str, str]]:
    """The ``(field, path)`` pairs a dataset reads, joined with its ``data_root``."""
    data_root = dataset_cfg.get('data_root') or ''
    paths = [('data_root', data_root)] if data_root else []
    if dataset_cfg.get('ann_file'):
        paths.append(('ann_file', osp.join(data_root, dataset_cfg['ann_file'])))
    prefix = dataset_cfg.get('data_prefix') or {}
    prefixes = prefix.items() if isinstance(prefix, dict) else [('data_prefix', prefix)]
    paths += [(f'data_prefix.{name}' if isinstance(prefix, dict) else name,
               osp.join(data_root, value)) for name, value in prefixes if value]
    return paths


def layout_doc(dataset_type: str) -> str:
    """The documentation section describing the layout of a dataset type."""
    for name, doc in _LAYOUT_DOCS:
        if name in dataset_type:
            return doc
    return 'docs/get_started.md'


def check_data_paths(cfg: Config, keys=DATALOADER_KEYS) -> None:
    """Raises a clear error when a dataset of ``cfg`` is missing on disk.

    Remote paths (``s3://`` and the like) are left to the dataset itself.

    Args:
        cfg: a runner config.
        keys: the dataloaders to check; absent or ``None`` ones are skipped.

    Raises:
        DatasetNotFoundError: naming the dataloader, the config field, the missing path and
            the documentation of the expected layout.

    Example:
        >>> check_data_paths(Config.fromfile('configs/twins/svt-s_8xb128_in1k.py'))
    """
    for key in keys:
        dataloader = cfg.get(key)
        if not dataloader:
            continue
        for dataset in _leaf_datasets(dataloader['dataset']):
            for field, path in _named_paths(dataset):
                if '://' in path or osp.exists(path):
                    continue
                dataset_type = str(dataset.get('type', 'dataset'))
                raise DatasetNotFoundError(
                    f'{key}: the {dataset_type} dataset is not where the config says: '
                    f'{field} {path!r} does not exist (relative paths start at '
                    f'{osp.abspath(".")}). Put the data there in the expected layout, '
                    f'described in {layout_doc(dataset_type)}, or set the path with '
                    f'--cfg-options {key}.dataset.data_root=...')
