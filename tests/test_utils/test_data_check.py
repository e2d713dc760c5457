"""check_data_paths: the evaluators' annotation files are checked with their dataloaders."""
from pathlib import Path

import pytest
from mmengine.config import Config

from mmtwins.utils import DatasetNotFoundError, check_data_paths


def _config(data_root: Path, val_evaluator, test_evaluator=None) -> Config:
    """Dataloaders whose datasets exist, with the given evaluators."""
    dataloader = dict(dataset=dict(type='CocoDataset', data_root=str(data_root)))
    return Config(dict(train_dataloader=dataloader, val_dataloader=dataloader,
                       test_dataloader=dataloader, val_evaluator=val_evaluator,
                       test_evaluator=test_evaluator or val_evaluator))


@pytest.fixture
def annotations(tmp_path) -> Path:
    path = tmp_path / 'instances_val2017.json'
    path.write_text('{}')
    return path


def test_a_missing_evaluator_annotation_file_is_named(tmp_path, annotations):
    missing = tmp_path / 'missing.json'
    cfg = _config(tmp_path, dict(type='CocoMetric', ann_file=str(annotations)),
                  test_evaluator=dict(type='CocoMetric', ann_file=str(missing)))
    with pytest.raises(DatasetNotFoundError) as error:
        check_data_paths(cfg)
    assert str(error.value).startswith(
        f"test_evaluator: the annotation file of the CocoMetric evaluator is not where the "
        f"config says: test_evaluator.ann_file '{missing}' does not exist")
    assert 'docs/detection.md#prepare-coco' in str(error.value)
    assert '--cfg-options test_evaluator.ann_file=...' in str(error.value)


@pytest.mark.parametrize('evaluator, field', [
    ([dict(type='DumpResults'), dict(type='CocoMetric', ann_file='missing.json')],
     'val_evaluator.1.ann_file'),
    (dict(type='Evaluator', metrics=dict(type='CocoMetric', ann_file='missing.json')),
     'val_evaluator.metrics.ann_file'),
    (dict(metrics=[dict(type='CocoMetric', ann_file='missing.json')]),
     'val_evaluator.metrics.0.ann_file'),
])
def test_each_metric_of_an_evaluator_is_checked(tmp_path, evaluator, field):
    with pytest.raises(DatasetNotFoundError, match=f"{field} 'missing.json' does not exist"):
        check_data_paths(_config(tmp_path, evaluator))


def test_an_evaluator_is_checked_only_with_its_dataloader(tmp_path, annotations):
    cfg = _config(tmp_path, dict(type='CocoMetric', ann_file='missing.json'),
                  test_evaluator=dict(type='CocoMetric', ann_file=str(annotations)))
    check_data_paths(cfg, keys=('test_dataloader', ))  # as tools/test.py: no validation
    with pytest.raises(DatasetNotFoundError, match="val_evaluator.ann_file 'missing.json'"):
        check_data_paths(cfg)  # as tools/train.py
    cfg.val_dataloader = None  # no validation (tools/train.py --no-validate: both None)
    check_data_paths(cfg)


@pytest.mark.parametrize('ann_file', [None, 's3://bucket/instances_val2017.json'])
def test_no_or_remote_annotation_files_are_left_to_the_metric(tmp_path, ann_file):
    check_data_paths(_config(tmp_path, dict(type='CocoMetric', ann_file=ann_file)))
