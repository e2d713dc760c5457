"""Checks, before a run starts, that the datasets and annotation files a config names are on
disk."""
import os.path as osp
from typing import Iterator, List, Sequence, Tuple, Union

from mmengine.config import Config

DATALOADER_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
# The evaluator that scores the predictions on each dataloader's dataset.
_EVALUATOR_KEYS = {'val_dataloader': 'val_evaluator', 'test_dataloader': 'test_evaluator'}

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


def _named_metrics(evaluator_cfg: Union[dict, Sequence[dict]],
                   key: str) -> Iterator[Tuple[str, dict]]:
    """Yields the ``(config key, metric)`` pairs of an evaluator config.

    As MMEngine's ``Runner.build_evaluator`` accepts: a metric, a list of metrics, or an
    ``Evaluator`` dict with ``metrics`` (one or a list).

    Args:
        evaluator_cfg: the value of ``key`` in the config.
        key: its config key, e.g. ``'val_evaluator'``.

    Example:
        >>> list(_named_metrics([dict(type='CocoMetric'), dict(type='DumpResults')],
        ...                     'test_evaluator'))[1][0]
        'test_evaluator.1'
    """
    if isinstance(evaluator_cfg, (list, tuple)):
        for index, metric in enumerate(evaluator_cfg):
            yield from _named_metrics(metric, f'{key}.{index}')
    elif 'metrics' in evaluator_cfg:
        yield from _named_metrics(evaluator_cfg['metrics'], f'{key}.metrics')
    else:
        yield key, evaluator_cfg


def _is_missing(path: str) -> bool:
    """Whether a local path does not exist; remote ones (``s3://`` and the like) are left
    to the component that reads them."""
    return '://' not in path and not osp.exists(path)


def _not_found(key: str, what: str, field: str, path: str, doc: str,
               option: str) -> DatasetNotFoundError:
    """The error for a missing ``path``, set by ``field`` of the ``key`` section."""
    return DatasetNotFoundError(
        f'{key}: {what} is not where the config says: {field} {path!r} does not exist '
        f'(relative paths start at {osp.abspath(".")}). Put the data there in the expected '
        f'layout, described in {doc}, or set the path with --cfg-options {option}=...')


def _check_dataloader(key: str, dataloader: dict) -> None:
    """Raises :class:`DatasetNotFoundError` for the first path of a dataloader's datasets
    that does not exist."""
    for dataset in _leaf_datasets(dataloader['dataset']):
        dataset_type = str(dataset.get('type', 'dataset'))
        for field, path in _named_paths(dataset):
            if _is_missing(path):
                raise _not_found(key, f'the {dataset_type} dataset', field, path,
                                 layout_doc(dataset_type), f'{key}.dataset.data_root')


def _check_evaluator(key: str, evaluator_cfg: Union[dict, Sequence[dict]]) -> None:
    """Raises :class:`DatasetNotFoundError` for an ``ann_file`` of an evaluator's metrics
    (COCO's ground truth, say) that does not exist; the metrics read it only when built,
    after the datasets and the model."""
    for metric_key, metric in _named_metrics(evaluator_cfg, key):
        path = metric.get('ann_file')
        if path and _is_missing(path):
            metric_type = str(metric.get('type', 'metric'))
            field = f'{metric_key}.ann_file'
            raise _not_found(key, f'the annotation file of the {metric_type} evaluator', field,
                             path, layout_doc(metric_type), field)


def layout_doc(dataset_type: str) -> str:
    """The documentation section describing the layout of a dataset type."""
    for name, doc in _LAYOUT_DOCS:
        if name in dataset_type:
            return doc
    return 'docs/get_started.md'


def check_data_paths(cfg: Config, keys: Sequence[str] = DATALOADER_KEYS) -> None:
    """Raises a clear error when a dataset or annotation file of ``cfg`` is missing on disk.

    Each dataloader is checked with its evaluator (``val_evaluator`` for
    ``val_dataloader``, ``test_evaluator`` for ``test_dataloader``), whose metrics may read
    an ``ann_file`` of their own. Remote paths (``s3://`` and the like) are left to the
    dataset or metric itself.

    Args:
        cfg: a runner config.
        keys: the dataloaders to check, each with its evaluator; absent or ``None`` ones
            (``--no-validate`` sets ``val_dataloader`` to ``None``) are skipped.

    Raises:
        DatasetNotFoundError: naming the dataloader or evaluator, the config field (e.g.
            ``data_root``, ``val_evaluator.ann_file``), the missing path and the
            documentation of the expected layout.

    Example:
        All the datasets and evaluator files, then the test set's only, as
        ``tools/test.py`` checks (with the data in place, so the doctest skips it):

        >>> cfg = Config.fromfile('configs/twins/mask-rcnn_svt-s_fpn_1x_coco.py')
        >>> check_data_paths(cfg)  # doctest: +SKIP
        >>> check_data_paths(cfg, keys=('test_dataloader', ))  # doctest: +SKIP
    """
    for key in keys:
        dataloader = cfg.get(key)
        if not dataloader:
            continue
        _check_dataloader(key, dataloader)
        evaluator_key = _EVALUATOR_KEYS.get(key)
        if evaluator_key and cfg.get(evaluator_key):
            _check_evaluator(evaluator_key, cfg[evaluator_key])
