"""mmtwins.CheckpointHook: crash-safe checkpoint files and the random states of a resume.

Runs killed with SIGKILL and resumed through tools/train.py are in
tests/test_reliability/test_crash_resume.py.
"""
import itertools
import os
import random

import numpy as np
import pytest
import torch
from mmengine.evaluator import BaseMetric, Evaluator
from mmengine.runner import Runner as MMEngineRunner

from mmtwins.converters import read_checkpoint
from mmtwins.engine import CheckpointHook, Runner
from mmtwins.utils.atomic_files import temporary_name, write_text_atomically
from tests.test_engine.test_runner import ToyDataset, ToyRegressor

_experiment_ids = itertools.count()


def build_runner(work_dir, runner_class=Runner, max_epochs=3, loader=(), checkpoint=(),
                 model_class=ToyRegressor, **runner_options):
    """A toy runner with ``mmtwins.CheckpointHook`` (keeping 2 checkpoints by default)."""
    return runner_class(
        model=model_class(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=ToyDataset(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='default_collate'),
            batch_size=4,
            **{'num_workers': 0, **dict(loader)}),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(checkpoint=dict(type='mmtwins.CheckpointHook', interval=1,
                                           **{'max_keep_ckpts': 2, **dict(checkpoint)})),
        randomness=dict(seed=0),
        experiment_name=f'hook-{next(_experiment_ids)}',
        **runner_options)


def test_keeps_the_newest_checkpoints_and_records_the_last(tmp_path):
    build_runner(tmp_path).train()
    assert sorted(p.name for p in tmp_path.glob('epoch_*.pth')) == ['epoch_2.pth', 'epoch_3.pth']
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'epoch_3.pth')
    assert not list(tmp_path.glob('.*.tmp'))


class _RisingScore(BaseMetric):
    """A score that improves at every validation, so each one saves a new best checkpoint."""

    def __init__(self):
        super().__init__()
        self.validations = 0

    def process(self, data_batch, data_samples):
        self.results.append(0)

    def compute_metrics(self, results):
        self.validations += 1
        return dict(score=self.validations)


def test_previous_best_is_removed_after_the_new_one_is_written(tmp_path):
    runner = build_runner(
        tmp_path, checkpoint=dict(save_best='score', rule='greater'),
        val_dataloader=dict(dataset=ToyDataset(), sampler=dict(type='DefaultSampler'),
                            collate_fn=dict(type='default_collate'), batch_size=8),
        val_cfg=dict(), val_evaluator=Evaluator([_RisingScore()]))
    best_files_at_each_best_write = []
    save = runner.save_checkpoint

    def save_recording_the_best_files(out_dir, filename, *args, **kwargs):
        if filename.startswith('best_'):
            best_files_at_each_best_write.append(
                sorted(path.name for path in tmp_path.glob('best_*.pth')))
        save(out_dir, filename, *args, **kwargs)

    runner.save_checkpoint = save_recording_the_best_files
    runner.train()
    assert best_files_at_each_best_write == [
        [], ['best_score_epoch_1.pth'], ['best_score_epoch_2.pth']]
    assert [path.name for path in tmp_path.glob('best_*.pth')] == ['best_score_epoch_3.pth']


def test_checkpoints_hold_random_states_readable_under_weights_only(tmp_path):
    build_runner(tmp_path, max_epochs=1).train()
    states = read_checkpoint(str(tmp_path / 'epoch_1.pth'))['random_states']
    assert states['numpy'][0] == 'MT19937' and states['numpy'][1].dtype == np.uint32
    assert states['torch'].dtype == torch.uint8
    assert states['python'][0] == random.getstate()[0]


def test_refuses_a_runner_whose_writes_are_not_atomic(tmp_path):
    with pytest.raises(TypeError, match='mmtwins.engine.Runner'):
        build_runner(tmp_path, runner_class=MMEngineRunner).train()



def test_a_misspelt_option_is_refused_before_training(tmp_path):
    runner = build_runner(tmp_path, checkpoint=dict(max_keep_ckpt=1))
    with pytest.raises(TypeError, match='CheckpointHook got unknown options max_keep_ckpt'):
        runner.train()
    assert runner.iter == 0


class DivergingRegressor(ToyRegressor):
    """Its loss turns NaN after the 4 iterations of the first epoch."""

    def __init__(self):
        super().__init__()
        self.steps = 0

    def loss(self, inputs, targets):
        self.steps += 1
        losses = super().loss(inputs, targets)
        return dict(loss=losses['loss'] * float('nan')) if self.steps > 4 else losses


def test_a_diverged_run_stops_without_saving_and_keeps_its_checkpoints(tmp_path):
    runner = build_runner(tmp_path, model_class=DivergingRegressor,
                          checkpoint=dict(max_keep_ckpts=1))
    with pytest.raises(FloatingPointError, match='training loss nan at iteration 8: the run '
                       'diverged. No checkpoint is saved'):
        runner.train()
    assert sorted(path.name for path in tmp_path.glob('*.pth')) == ['epoch_1.pth']
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'epoch_1.pth')
    assert not list(tmp_path.glob('.*.tmp'))

@pytest.mark.parametrize('persistent', [True, False])
def test_resume_warns_when_workers_keep_their_random_states(tmp_path, persistent):
    loader = dict(num_workers=1, persistent_workers=persistent)
    build_runner(tmp_path, max_epochs=1, loader=loader).train()
    resumed = build_runner(tmp_path, max_epochs=2, resume=True, loader=loader)
    resumed.train()
    with open(os.path.join(resumed.log_dir, f'{resumed.timestamp}.log')) as log:
        text = log.read()
    assert 'resumed epoch: 1' in text
    assert ('Set train_dataloader.persistent_workers=False for an exact resume' in text) \
        == persistent


def test_validation_leaves_the_training_random_states_untouched():
    hook = CheckpointHook()
    torch.manual_seed(0)
    np.random.seed(0)
    expected = (torch.rand(3), np.random.rand(3))
    torch.manual_seed(0)
    np.random.seed(0)
    hook.before_val(runner=None)
    torch.rand(5), np.random.rand(5)  # what validation draws
    hook.after_val(runner=None)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])


def test_text_written_atomically_leaves_no_temporary_file(tmp_path):
    path = tmp_path / 'last_checkpoint'
    write_text_atomically(str(path), 'old')
    write_text_atomically(str(path), 'new')
    assert path.read_text() == 'new'
    assert os.listdir(tmp_path) == ['last_checkpoint']
    assert temporary_name(str(path)).startswith(str(tmp_path / '.last_checkpoint.'))
